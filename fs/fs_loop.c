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
 * one itself unless the request is about to wait: the disk (a frame not in
 * the page cache, found with RWF_NOWAIT), a frame another thread reads
 * from disk, a free catalog handle.  Such a wait calls strata_will_block(), and the
 * leader passes the leadership to an idle follower (started on demand, up
 * to max) before it waits, so the next requests are read and served
 * meanwhile.  A request that only computes (a lookup from the catalog in
 * memory, a frame decompressed from the page cache) keeps its thread: a
 * sequential client then talks to one thread, as it would to a
 * single-threaded loop, and a slow disk still blocks no one else.
 *
 * Ending: the session ends with the leader's read (unmount: ENODEV); a
 * signal (libfuse's handlers set the session's exit flag) reaches only the
 * calling thread, which blocks them in the workers, and cancels them.
 * Workers are cancelable only inside read(2).
 */
#include "fs_int.h"

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

struct fs_loop {
	struct fuse_session *se;
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* followers wait here to lead */
	sem_t done;                 /* posted when the session has ended */
	pthread_t *threads;
	unsigned nthreads, max;
	unsigned idle;              /* followers waiting on cond */
	bool led;                   /* some thread holds the leadership */
	bool stop;
	int error;                  /* the read's error that ended the session */
};

/* Set while this thread leads; fs_loop_will_block() clears it. */
static _Thread_local struct fs_loop *t_leading;

static void *worker_main(void *arg);

/* Under l->lock.  A new worker starts by taking the leadership. */
static void spawn(struct fs_loop *l)
{
	if (!l->stop && l->nthreads < l->max &&
	    pthread_create(&l->threads[l->nthreads], NULL, worker_main, l) == 0)
		l->nthreads++;
}

static void fs_loop_will_block(void)
{
	struct fs_loop *l = t_leading;

	if (!l)
		return;
	t_leading = NULL;
	pthread_mutex_lock(&l->lock);
	l->led = false;
	if (l->idle)
		pthread_cond_signal(&l->cond);
	else
		spawn(l);   /* at max: the first worker to finish leads */
	pthread_mutex_unlock(&l->lock);
}

static void free_buf(void *arg)
{
	struct fuse_buf *b = arg;

	free(b->mem);
	b->mem = NULL;
}

static void *worker_main(void *arg)
{
	struct fs_loop *l = arg;
	struct fuse_buf buf = { .mem = NULL };
	int res = 0;

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
		pthread_mutex_unlock(&l->lock);
		t_leading = l;
		while (t_leading) {
			pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
			res = fuse_session_receive_buf(l->se, &buf);
			pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
			if (res == -EINTR && !fuse_session_exited(l->se))
				continue;
			if (res <= 0)
				break;
			fuse_session_process_buf(l->se, &buf);
		}
		pthread_mutex_lock(&l->lock);
		if (t_leading) {
			/* the session ended under this leader */
			t_leading = NULL;
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

	l.threads = calloc(l.max, sizeof(*l.threads));
	if (!l.threads)
		return -ENOMEM;
	pthread_mutex_init(&l.lock, NULL);
	pthread_cond_init(&l.cond, NULL);
	sem_init(&l.done, 0, 0);

	/* signals come to this thread only (workers inherit the mask) */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &old);
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
		pthread_cancel(l.threads[i]);
	for (unsigned i = 0; i < l.nthreads; i++)
		pthread_join(l.threads[i], NULL);
	strata_set_block_hook(NULL);
	if (rc == 0)
		rc = l.error;
	sem_destroy(&l.done);
	pthread_cond_destroy(&l.cond);
	pthread_mutex_destroy(&l.lock);
	free(l.threads);
	return rc;
}
