/*
 * fs_loop.c - the request loop: one leader reads /dev/fuse, followers wait.
 *
 * libfuse's multithreaded loop keeps a thread blocked in read(2) on
 * /dev/fuse while others work, and starts one more whenever none is free,
 * so even a single sequential client (cat, diff -r, cp) has its requests
 * served by two or more threads in turn.  On this kind of VM every request
 * then woke a thread that last ran elsewhere: 1,000 small files (page cache
 * warm) took 0.46-0.65 s through that loop against 0.37 s through one
 * thread, a cold 100 MiB read 828-916 MiB/s against 908-1155.
 *
 * Here exactly one thread, the leader, reads requests, and it serves each
 * one itself.  A request that must wait (the disk: a frame not in the page
 * cache, found with RWF_NOWAIT; a frame another thread reads from disk; a
 * free catalog handle) calls strata_will_block(), which arms this thread's
 * timer.  If the wait outlasts FS_HANDOFF_NS, the timer's signal wakes the
 * standby thread, which passes the leadership to an idle follower (started
 * on demand, up to max), so the next requests are read and served
 * meanwhile: a slow disk blocks no one else for long.  A short wait keeps
 * its thread: handing over at once woke a follower and then woke the
 * client's next request through it, two futex wake-ups (~25 us each on a
 * paravirtualised host) for a disk read of ~80 us.  1,000 random small
 * files cold took 0.37-0.40 s with the hand-over at once, 0.29-0.31 s with
 * it deferred.  The leader's old request finishes, and the thread becomes
 * a follower.
 *
 * Ending: the session ends with the leader's read (unmount: ENODEV); a
 * signal (libfuse's handlers set the session's exit flag) reaches only the
 * calling thread, which blocks them in the workers, and cancels them.
 * Workers are cancelable only inside read(2), the standby only inside
 * sigwaitinfo(2).  Without the timers (timer_create failed) a wait hands
 * the leadership over at once.
 */
#include "fs_int.h"

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FS_HANDOFF_NS 500000   /* a wait this long hands the reading over */

struct fs_loop;

struct fs_worker {
	struct fs_loop *l;
	unsigned index;
	pthread_t thread;
	timer_t timer;
	bool has_timer;
	atomic_bool leading;        /* this thread holds the leadership (written under l->lock) */
	bool blocked;               /* in a wait, timer armed (written by the thread, under l->lock) */
};

struct fs_loop {
	struct fuse_session *se;
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* followers wait here to lead */
	sem_t done;                 /* posted when the session has ended */
	sem_t standby_up;           /* posted once standby_tid is known */
	struct fs_worker *workers;
	unsigned nthreads, max;
	unsigned idle;              /* followers waiting on cond */
	bool led;                   /* some thread holds the leadership */
	bool stop;
	int error;                  /* the read's error that ended the session */
	pthread_t standby;
	bool has_standby;
	pid_t standby_tid;
	int signo;                  /* the timers' signal, blocked everywhere */
};

static _Thread_local struct fs_worker *t_self;

static void *worker_main(void *arg);

/* Under l->lock.  A new worker starts by taking the leadership. */
static void spawn(struct fs_loop *l)
{
	struct fs_worker *w;

	if (l->stop || l->nthreads >= l->max)
		return;
	w = &l->workers[l->nthreads];
	w->l = l;
	w->index = l->nthreads;
	if (l->has_standby && !w->has_timer) {
		struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = l->signo };

		ev.sigev_value.sival_int = (int)w->index;
		ev._sigev_un._tid = l->standby_tid;
		w->has_timer = timer_create(CLOCK_MONOTONIC, &ev, &w->timer) == 0;
	}
	if (pthread_create(&w->thread, NULL, worker_main, w) == 0)
		l->nthreads++;
}

/* Under l->lock: w, the leader, gives the leadership to a follower. */
static void hand_over(struct fs_loop *l, struct fs_worker *w)
{
	atomic_store(&w->leading, false);
	l->led = false;
	if (l->idle)
		pthread_cond_signal(&l->cond);
	else
		spawn(l);   /* at max: the first worker to finish leads */
}

static void fs_loop_will_block(void)
{
	struct fs_worker *w = t_self;
	struct fs_loop *l;

	if (!w || !atomic_load(&w->leading) || w->blocked)
		return;
	l = w->l;
	pthread_mutex_lock(&l->lock);
	if (w->has_timer) {
		const struct itimerspec when = { .it_value = { 0, FS_HANDOFF_NS } };

		w->blocked = timer_settime(w->timer, 0, &when, NULL) == 0;
	}
	if (!w->blocked)
		hand_over(l, w);
	pthread_mutex_unlock(&l->lock);
}

/* After a request that waited: disarm; false if the leadership went meanwhile. */
static bool wait_over(struct fs_worker *w)
{
	const struct itimerspec off = { 0 };
	bool leading;

	(void)timer_settime(w->timer, 0, &off, NULL);
	pthread_mutex_lock(&w->l->lock);
	w->blocked = false;
	leading = atomic_load(&w->leading);
	pthread_mutex_unlock(&w->l->lock);
	return leading;
}

/* The standby: a worker's timer fired, so its wait is long; pass its leadership on. */
static void *standby_main(void *arg)
{
	struct fs_loop *l = arg;
	sigset_t set;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	l->standby_tid = (pid_t)syscall(SYS_gettid);
	sem_post(&l->standby_up);
	sigemptyset(&set);
	sigaddset(&set, l->signo);
	for (;;) {
		siginfo_t si;
		int sig;

		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		sig = sigwaitinfo(&set, &si);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (sig != l->signo)
			continue;
		pthread_mutex_lock(&l->lock);
		if ((unsigned)si.si_value.sival_int < l->nthreads) {
			struct fs_worker *w = &l->workers[si.si_value.sival_int];

			/* a stale expiry (the wait ended first) finds it unblocked */
			if (w->blocked && atomic_load(&w->leading))
				hand_over(l, w);
		}
		pthread_mutex_unlock(&l->lock);
	}
	return NULL;
}

static void free_buf(void *arg)
{
	struct fuse_buf *b = arg;

	free(b->mem);
	b->mem = NULL;
}

/*
 * Read and serve requests while w leads: the read's result that ended the
 * session (<= 0), or 1 once the leadership went to another thread.
 */
static int lead(struct fs_worker *w, struct fuse_buf *buf)
{
	struct fs_loop *l = w->l;
	int res;

	while (atomic_load(&w->leading)) {
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		res = fuse_session_receive_buf(l->se, buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (res == -EINTR && !fuse_session_exited(l->se))
			continue;
		if (res <= 0)
			return res;
		fuse_session_process_buf(l->se, buf);
		if (w->blocked && !wait_over(w))
			break;
	}
	return 1;
}

static void *worker_main(void *arg)
{
	struct fs_worker *w = arg;
	struct fs_loop *l = w->l;
	struct fuse_buf buf = { .mem = NULL };

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	pthread_cleanup_push(free_buf, &buf);
	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		if (l->led) {
			l->idle++;
			pthread_cond_wait(&l->cond, &l->lock);
			l->idle--;
			continue;
		}
		l->led = true;
		atomic_store(&w->leading, true);
		pthread_mutex_unlock(&l->lock);
		t_self = w;
		int res = lead(w, &buf);

		pthread_mutex_lock(&l->lock);
		if (res <= 0 && atomic_load(&w->leading)) {
			/* the session ended under this leader */
			atomic_store(&w->leading, false);
			l->led = false;
			if (!l->stop) {
				l->stop = true;
				l->error = res == -ENODEV || res == -EINTR ? 0 : res;
				sem_post(&l->done);
			}
			pthread_cond_broadcast(&l->cond);
		}
	}
	pthread_mutex_unlock(&l->lock);
	pthread_cleanup_pop(1);
	return NULL;
}

int fs_loop_run(struct fuse_session *se, unsigned max_threads, void (*tick)(void *), void *arg)
{
	struct fs_loop l = { .se = se, .max = max_threads ? max_threads : 1 };
	sigset_t block, old;
	int rc;

	l.workers = calloc(l.max, sizeof(*l.workers));
	if (!l.workers)
		return -ENOMEM;
	pthread_mutex_init(&l.lock, NULL);
	pthread_cond_init(&l.cond, NULL);
	sem_init(&l.done, 0, 0);
	sem_init(&l.standby_up, 0, 0);
	l.signo = SIGRTMIN;

	/* signals come to this thread only (workers inherit the mask) */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGPIPE);
	sigaddset(&block, l.signo);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	if (pthread_create(&l.standby, NULL, standby_main, &l) == 0) {
		l.has_standby = true;
		sem_wait(&l.standby_up);
	}
	strata_set_block_hook(fs_loop_will_block);
	pthread_mutex_lock(&l.lock);
	spawn(&l);
	rc = l.nthreads ? 0 : -EAGAIN;
	pthread_mutex_unlock(&l.lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	while (rc == 0 && !fuse_session_exited(se)) {
		/* a signal interrupts the wait; the timeout covers one that
		 * came between the check and the wait */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (sem_timedwait(&l.done, &ts) == 0)
			break;
		if (tick)
			tick(arg);
	}

	pthread_mutex_lock(&l.lock);
	l.stop = true;
	pthread_cond_broadcast(&l.cond);
	pthread_mutex_unlock(&l.lock);
	/* the one in read(2) leaves there; the others see stop */
	for (unsigned i = 0; i < l.nthreads; i++)
		pthread_cancel(l.workers[i].thread);
	for (unsigned i = 0; i < l.nthreads; i++)
		pthread_join(l.workers[i].thread, NULL);
	strata_set_block_hook(NULL);
	if (l.has_standby) {
		pthread_cancel(l.standby);
		pthread_join(l.standby, NULL);
	}
	for (unsigned i = 0; i < l.max; i++)
		if (l.workers[i].has_timer)
			timer_delete(l.workers[i].timer);
	if (rc == 0)
		rc = l.error;
	sem_destroy(&l.standby_up);
	sem_destroy(&l.done);
	pthread_cond_destroy(&l.cond);
	pthread_mutex_destroy(&l.lock);
	free(l.workers);
	return rc;
}
