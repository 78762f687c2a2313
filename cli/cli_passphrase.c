/*
 * cli_passphrase.c - where the passphrase of an encrypted repository comes
 * from: --passphrase-file FILE (its first line), --passphrase-command CMD
 * (run with /bin/sh -c, the first line of its output; a non-zero exit is an
 * error), the environment variable STRATA_PASSPHRASE, or a prompt without
 * echo when stdin is a terminal.  Never the command line.  Every copy is
 * wiped before it is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

#define CLI_PASSPHRASE_MAX 4096

bool cli_passphrase_given(void)
{
	const char *env = getenv("STRATA_PASSPHRASE");

	return arg_passphrase_file || arg_passphrase_command || (env && *env);
}

void cli_passphrase_free(char *p, size_t len)
{
	if (!p)
		return;
	explicit_bzero(p, len);
	free(p);
}

/*
 * Read fd to EOF (at most CLI_PASSPHRASE_MAX bytes kept) and keep the
 * first line.  0 and *ret (malloc'ed) or -errno.
 */
static int cli_read_first_line(int fd, char **ret, size_t *ret_len)
{
	char *buf = malloc(CLI_PASSPHRASE_MAX + 1);
	size_t len = 0;
	bool eol = false;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		char tmp[512];
		ssize_t n = read(fd, tmp, sizeof(tmp));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n && !eol; i++) {
			if (tmp[i] == '\n') {
				eol = true;
				break;
			}
			if (len >= CLI_PASSPHRASE_MAX) {
				r = -E2BIG;
				break;
			}
			buf[len++] = tmp[i];
		}
		explicit_bzero(tmp, sizeof(tmp));
		if (r < 0)
			break;
		/* keep draining a command's output so it never blocks on a pipe */
	}
	if (r == 0 && len > 0 && buf[len - 1] == '\r')
		len--;
	if (r < 0) {
		cli_passphrase_free(buf, CLI_PASSPHRASE_MAX + 1);
		return r;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

static int cli_passphrase_from_file(const char *path, char **ret, size_t *ret_len,
				    struct strata_error *err)
{
	char quoted[512];
	int fd, r;

	strata_quote(quoted, sizeof(quoted), path, strlen(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		/* no passphrase to be had: an authentication failure */
		return strata_error_set(err, -e,
					e == ENOENT || e == EACCES ? STRATA_ERR_AUTH : STRATA_ERR_IO,
					"cannot read passphrase file '%s': %s", quoted,
					strerror(e));
	}
	r = cli_read_first_line(fd, ret, ret_len);
	close(fd);
	if (r == -E2BIG)
		return strata_error_set(err, r, STRATA_ERR_USAGE,
					"passphrase file '%s': passphrase longer than %d bytes",
					quoted, CLI_PASSPHRASE_MAX);
	if (r < 0)
		return strata_error_set(err, r, STRATA_ERR_IO,
					"cannot read passphrase file '%s': %s", quoted,
					strerror(-r));
	return 0;
}

static int cli_passphrase_from_command(const char *cmd, char **ret, size_t *ret_len,
				       struct strata_error *err)
{
	int pfd[2] = { -1, -1 };
	char *pass = NULL;
	size_t len = 0;
	pid_t pid;
	int status, r;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return strata_error_errno(err, errno, "passphrase command: pipe");
	pid = fork();
	if (pid < 0) {
		r = strata_error_errno(err, errno, "passphrase command: fork");
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	if (pid == 0) {
		/* child: stdout to the pipe, stdin and stderr stay (a prompt may use them) */
		if (dup2(pfd[1], STDOUT_FILENO) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	r = cli_read_first_line(pfd[0], &pass, &len);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			int e = errno;

			cli_passphrase_free(pass, len);
			return strata_error_errno(err, e, "passphrase command: waitpid");
		}
	}
	if (r < 0) {
		cli_passphrase_free(pass, len);
		return strata_error_set(err, r, r == -E2BIG ? STRATA_ERR_USAGE : STRATA_ERR_IO,
					"passphrase command: cannot read its output: %s",
					strerror(-r));
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		cli_passphrase_free(pass, len);
		if (WIFSIGNALED(status))
			return strata_error_set(err, -EACCES, STRATA_ERR_AUTH,
						"passphrase command killed by signal %d",
						WTERMSIG(status));
		return strata_error_set(err, -EACCES, STRATA_ERR_AUTH,
					"passphrase command failed with exit status %d",
					WEXITSTATUS(status));
	}
	*ret = pass;
	*ret_len = len;
	return 0;
}

/* Prompt on the terminal (stderr) and read a line from stdin without echo. */
static int cli_passphrase_prompt(const char *prompt, char **ret, size_t *ret_len,
				 struct strata_error *err)
{
	struct termios old, noecho;
	bool restore = false;
	int r;

	fputs(prompt, stderr);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) == 0) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		noecho.c_lflag |= ECHONL;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho) == 0)
			restore = true;
	}
	/* read byte by byte so nothing after the newline is consumed */
	{
		char *buf = malloc(CLI_PASSPHRASE_MAX + 1);
		size_t len = 0;

		r = buf ? 0 : -ENOMEM;
		while (r == 0) {
			char c;
			ssize_t n = read(STDIN_FILENO, &c, 1);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = -errno;
				break;
			}
			if (n == 0 || c == '\n')
				break;
			if (len >= CLI_PASSPHRASE_MAX) {
				r = -E2BIG;
				break;
			}
			buf[len++] = c;
		}
		if (r == 0) {
			buf[len] = '\0';
			*ret = buf;
			*ret_len = len;
		} else {
			cli_passphrase_free(buf, CLI_PASSPHRASE_MAX + 1);
		}
	}
	if (restore)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (r < 0)
		return strata_error_set(err, r, STRATA_ERR_IO, "cannot read the passphrase: %s",
					strerror(-r));
	return 0;
}

int cli_passphrase_get(const char *what, bool confirm, char **ret, size_t *ret_len,
		       struct strata_error *err)
{
	const char *env = getenv("STRATA_PASSPHRASE");
	char *pass = NULL, *again = NULL;
	size_t len = 0, again_len = 0;
	int r;

	if (arg_passphrase_file) {
		r = cli_passphrase_from_file(arg_passphrase_file, &pass, &len, err);
	} else if (arg_passphrase_command) {
		r = cli_passphrase_from_command(arg_passphrase_command, &pass, &len, err);
	} else if (env && *env) {
		len = strlen(env);
		pass = strdup(env);
		r = pass ? 0 : strata_error_set(err, -ENOMEM, STRATA_ERR_INTERNAL, "out of memory");
	} else if (isatty(STDIN_FILENO)) {
		r = cli_passphrase_prompt("passphrase: ", &pass, &len, err);
		if (r == 0 && confirm) {
			r = cli_passphrase_prompt("passphrase again: ", &again, &again_len, err);
			if (r == 0 && (again_len != len || memcmp(again, pass, len) != 0))
				r = strata_error_set(err, -EINVAL, STRATA_ERR_USAGE,
						     "the passphrases do not match");
		}
	} else {
		r = strata_error_set(err, -EACCES, confirm ? STRATA_ERR_USAGE : STRATA_ERR_AUTH,
				     "%s needs a passphrase: use --passphrase-file, "
				     "--passphrase-command or STRATA_PASSPHRASE", what);
	}
	cli_passphrase_free(again, again_len);
	if (r == 0 && len == 0)
		r = strata_error_set(err, -EINVAL, confirm ? STRATA_ERR_USAGE : STRATA_ERR_AUTH,
				     "empty passphrase for %s", what);
	if (r < 0) {
		cli_passphrase_free(pass, len);
		return r;
	}
	*ret = pass;
	*ret_len = len;
	return 0;
}
