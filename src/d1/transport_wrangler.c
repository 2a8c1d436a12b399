/*
 * transport_wrangler.c: run `wrangler d1 execute --file` for D1 mode.
 *
 * wrangler runs without a shell (an argument vector to execvp), in its own
 * process group (it starts workerd children: a timeout or a cancel stops
 * the whole group, SIGTERM then SIGKILL), with stdin from /dev/null,
 * WRANGLER_SEND_METRICS=false, and its stdout and stderr captured (bounded).
 * A non-zero exit fails with wrangler's own error text in the message.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "d1/transport.h"

#define OUTPUT_MAX (4 << 20)  /* bytes of stdout/stderr kept from wrangler */
#define KILL_GRACE 5.0        /* seconds between SIGTERM and SIGKILL */

struct wrangler {
	const rs_config *cfg;
	char *cwd;
	volatile int *cancel;
};

/* Remove ANSI escapes and keep the lines that say what went wrong. */
static void error_text(char *out, size_t size, const char *text)
{
	char *clean = malloc(strlen(text) + 1);
	if (!clean) {
		snprintf(out, size, "(out of memory)");
		return;
	}
	size_t o = 0;
	for (const char *p = text; *p; p++) {
		if (*p == 0x1b && p[1] == '[') {
			p += 2;
			while (*p && !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
				p++;
			if (!*p)
				break;
			continue;
		}
		clean[o++] = *p;
	}
	clean[o] = '\0';
	/* Prefer the line naming a constraint or an error; else the last lines. */
	const char *start = strstr(clean, "constraint failed");
	if (start) {
		while (start > clean && start[-1] != '\n')
			start--;
	} else if ((start = strstr(clean, "ERROR")) != NULL) {
		while (start > clean && start[-1] != '\n')
			start--;
	} else {
		start = clean + (o > size - 1 ? o - (size - 1) : 0);
	}
	size_t n = 0;
	for (const char *p = start; *p && n + 1 < size; p++) {
		char c = *p == '\n' || *p == '\r' ? ' ' : *p;
		if (c == ' ' && n && out[n - 1] == ' ')
			continue;
		out[n++] = c;
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	free(clean);
}

static int drain(int fd, rs_buf *b)
{
	char chunk[8192];
	ssize_t r = read(fd, chunk, sizeof chunk);
	if (r > 0 && b->len + (size_t)r <= OUTPUT_MAX)
		rs_buf_append(b, chunk, (size_t)r);
	return r > 0 ? 1 : (r < 0 && (errno == EINTR || errno == EAGAIN)) ? 1 : 0;
}

/*
 * Run argv in cwd; capture output; stop the process group after timeout_ms
 * or when *cancel turns non-zero.  *status gets the wait status; returns
 * RS_OK when the child ran to an exit (any exit code), else an error.
 */
static int run(char *const argv[], const char *cwd, double timeout_s, volatile int *cancel, rs_buf *out,
	       rs_buf *errb, int *status, rs_error *err)
{
	int po[2], pe[2], px[2];
	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || pipe2(px, O_CLOEXEC))
		return rs_err(err, RS_ETRANSPORT, "cannot start %s: pipe: %s", argv[0], strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		return rs_err(err, RS_ETRANSPORT, "cannot start %s: fork: %s", argv[0], strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		if (cwd && chdir(cwd) != 0) {
			int e = errno;
			if (write(px[1], &e, sizeof e) < 0) {}
			_exit(127);
		}
		setenv("WRANGLER_SEND_METRICS", "false", 1);
		execvp(argv[0], argv);
		int e = errno;
		if (write(px[1], &e, sizeof e) < 0) {}
		_exit(127);
	}
	setpgid(pid, pid);
	close(po[1]);
	close(pe[1]);
	close(px[1]);
	int exec_errno = 0;
	if (read(px[0], &exec_errno, sizeof exec_errno) != (ssize_t)sizeof exec_errno)
		exec_errno = 0;
	close(px[0]);
	double deadline = rs_mono() + timeout_s, kill_at = 0;
	int open_o = 1, open_e = 1, why = 0; /* why: 1 timeout, 2 cancel */
	while (open_o || open_e) {
		struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
		int r = poll(fds, 2, 200);
		if (r > 0) {
			if (open_o && (fds[0].revents & (POLLIN | POLLHUP)))
				open_o = drain(po[0], out);
			if (open_e && (fds[1].revents & (POLLIN | POLLHUP)))
				open_e = drain(pe[0], errb);
		}
		double now = rs_mono();
		if (!why && (now > deadline || (cancel && *cancel))) {
			why = now > deadline ? 1 : 2;
			kill(-pid, SIGTERM);
			kill_at = now + KILL_GRACE;
		}
		if (why && kill_at && now > kill_at) {
			kill(-pid, SIGKILL);
			kill_at = 0;
		}
		if (why && (now > deadline + 2 * KILL_GRACE))
			break; /* children holding the pipes: give up reading */
	}
	close(po[0]);
	close(pe[0]);
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	kill(-pid, SIGKILL); /* anything left in the group */
	if (exec_errno)
		return rs_err(err, RS_ETRANSPORT, "cannot run %s: %s", argv[0], strerror(exec_errno));
	if (why == 1)
		return rs_err(err, RS_ETRANSPORT, "%s timed out after %.0f s and was stopped", argv[0], timeout_s);
	if (why == 2)
		return rs_err(err, RS_EABORT, "%s stopped: the cycle was cancelled", argv[0]);
	return RS_OK;
}

static int exec_file(void *ctx, const char *path, rs_error *err)
{
	struct wrangler *w = ctx;
	const rs_config *cfg = w->cfg;
	char *argv[16];
	int n = 0;
	argv[n++] = cfg->d1_wrangler ? cfg->d1_wrangler : "wrangler";
	argv[n++] = "d1";
	argv[n++] = "execute";
	argv[n++] = cfg->d1_database;
	argv[n++] = "--file";
	argv[n++] = (char *)path;
	argv[n++] = cfg->d1_remote ? "--remote" : "--local";
	if (cfg->d1_wrangler_config) {
		argv[n++] = "--config";
		argv[n++] = cfg->d1_wrangler_config;
	}
	argv[n++] = "--yes";
	argv[n] = NULL;
	rs_buf out = RS_BUF_INIT(OUTPUT_MAX + 8192), errb = RS_BUF_INIT(OUTPUT_MAX + 8192);
	int status = 0;
	double timeout = cfg->d1_timeout_ms > 0 ? (double)cfg->d1_timeout_ms / 1000.0 : 600.0;
	int rc = run(argv, w->cwd, timeout, w->cancel, &out, &errb, &status, err);
	if (rc == RS_OK && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		char text[900];
		rs_buf all = RS_BUF_INIT(0);
		rs_buf_puts(&all, errb.data ? errb.data : "");
		rs_buf_puts(&all, "\n");
		rs_buf_puts(&all, out.data ? out.data : "");
		error_text(text, sizeof text, all.data ? all.data : "");
		rs_buf_free(&all);
		if (WIFSIGNALED(status))
			rc = rs_err(err, RS_ETRANSPORT, "wrangler d1 execute %s: killed by signal %d%s%s", cfg->d1_database,
				    WTERMSIG(status), text[0] ? ": " : "", text);
		else
			rc = rs_err(err, RS_EREMOTE, "wrangler d1 execute %s: exit %d: %s", cfg->d1_database,
				    WEXITSTATUS(status), text[0] ? text : "(no output)");
	}
	rs_buf_free(&out);
	rs_buf_free(&errb);
	return rc;
}

int rs_d1_wrangler_transport(rs_d1_transport *t, void **owned, const rs_config *cfg, rs_error *err)
{
	struct wrangler *w = calloc(1, sizeof *w);
	if (!w)
		return rs_err(err, RS_ENOMEM, "out of memory");
	w->cfg = cfg;
	if (cfg->d1_wrangler_config) {
		const char *slash = strrchr(cfg->d1_wrangler_config, '/');
		if (slash)
			w->cwd = strndup(cfg->d1_wrangler_config, (size_t)(slash - cfg->d1_wrangler_config + (slash == cfg->d1_wrangler_config)));
	}
	t->exec_file = exec_file;
	t->ctx = w;
	*owned = w;
	return RS_OK;
}

void rs_d1_wrangler_transport_free(void *owned)
{
	struct wrangler *w = owned;
	if (w) {
		free(w->cwd);
		free(w);
	}
}

void rs_d1_wrangler_set_cancel(void *owned, volatile int *flag)
{
	if (owned)
		((struct wrangler *)owned)->cancel = flag;
}

int rs_d1_tempfile_create(char *path, size_t size, const char *dir, rs_error *err)
{
	if (!dir)
		dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	if (snprintf(path, size, "%s/resort-sync-XXXXXX.sql", dir) >= (int)size)
		return rs_err(err, RS_ELOCAL, "%s: temporary directory path too long", dir);
	mode_t old = umask(077);
	int fd = mkostemps(path, 4, O_CLOEXEC);
	umask(old);
	if (fd < 0) {
		int e = errno;
		path[0] = '\0';
		return rs_err(err, RS_ELOCAL, "%s: cannot create a temporary file: %s", dir, strerror(e));
	}
	if (fchmod(fd, 0600) != 0) {
		int e = errno;
		close(fd);
		unlink(path);
		path[0] = '\0';
		return rs_err(err, RS_ELOCAL, "%s: %s", dir, strerror(e));
	}
	close(fd);
	return RS_OK;
}

void rs_d1_tempfile_remove(const char *path)
{
	if (path && *path)
		unlink(path);
}
