/*
 * wrangler.c: run `wrangler d1 execute`, capture and parse what it prints
 * (see wrangler.h), and keep a registry of private temporary SQL files.
 *
 * The child is started with fork() and execve(): everything it needs (the
 * resolved executable path, argv, envp, pipe and /dev/null descriptors) is
 * prepared before fork(), so the child only makes async-signal-safe calls
 * even when the caller has other threads.  An exec failure travels back on
 * a close-on-exec pipe.  The parent watches the child with poll() on its
 * stdout and stderr and waitid(WNOWAIT): the exited child stays a zombie,
 * keeping its pid and therefore its process group id from being reused,
 * until we have finished signalling the group.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "d1/wrangler.h"

extern char **environ;

#define OUTPUT_MAX_DEFAULT ((size_t)8 << 20)
#define GRACE_MS_DEFAULT 5000
#define DRAIN_MS_MAX 2000   /* after the child exits, how long its children may keep our pipes */
#define POLL_MS_MAX 100     /* how often the cancel flag is looked at, at the least */
#define METRICS_ENV "WRANGLER_SEND_METRICS="

/* ---- small helpers ---------------------------------------------------- */

/* A bounded capture buffer: keeps up to max bytes, counts the rest. */
struct capture {
	char *data;
	size_t len, cap, max, dropped;
};

static int capture_add(struct capture *c, const char *p, size_t n)
{
	size_t keep = c->len < c->max ? c->max - c->len : 0;
	if (keep > n)
		keep = n;
	c->dropped += n - keep;
	if (keep == 0)
		return 0;
	if (c->len + keep + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 16384;
		while (cap < c->len + keep + 1)
			cap *= 2;
		char *q = realloc(c->data, cap);
		if (!q)
			return -1;
		c->data = q;
		c->cap = cap;
	}
	memcpy(c->data + c->len, p, keep);
	c->len += keep;
	c->data[c->len] = '\0';
	return 0;
}

/* Move a descriptor above 2 (so dup2 onto 0-2 in the child cannot clash); -1 on error. */
static int fd_above_stdio(int fd)
{
	if (fd > 2)
		return fd;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	int e = errno;
	close(fd);
	errno = e;
	return nfd;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* "/cwd/" + rel into out; 0, or -1 (errno) if it does not fit. */
static int absolutize(char *out, size_t size, const char *rel)
{
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return -1;
	int n = snprintf(out, size, "%s/%s", cwd, rel);
	if (n < 0 || (size_t)n >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * Resolve the executable the way execvp would (a name with a slash is
 * used as is, else PATH is searched), but to an absolute path, since the
 * child changes directory before exec.  0, or an errno value.
 */
static int resolve_exe(const char *name, char *out, size_t size)
{
	if (!*name)
		return ENOENT;
	if (strchr(name, '/')) {
		if (name[0] == '/') {
			if (strlen(name) >= size)
				return ENAMETOOLONG;
			memcpy(out, name, strlen(name) + 1);
			return 0;
		}
		return absolutize(out, size, name) == 0 ? 0 : errno;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	int seen_eacces = 0;
	while (1) {
		const char *end = strchrnul(path, ':');
		size_t dl = (size_t)(end - path);
		char cand[PATH_MAX];
		int n;
		if (dl == 0)
			n = snprintf(cand, sizeof cand, "%s", name);
		else
			n = snprintf(cand, sizeof cand, "%.*s/%s", (int)dl, path, name);
		if (n > 0 && (size_t)n < sizeof cand) {
			struct stat st;
			if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
				if (access(cand, X_OK) == 0) {
					if (cand[0] == '/') {
						if ((size_t)n >= size)
							return ENAMETOOLONG;
						memcpy(out, cand, (size_t)n + 1);
						return 0;
					}
					return absolutize(out, size, cand) == 0 ? 0 : errno;
				}
				seen_eacces = 1;
			}
		}
		if (!*end)
			break;
		path = end + 1;
	}
	return seen_eacces ? EACCES : ENOENT;
}

/* A copy of environ with WRANGLER_SEND_METRICS=false in it; NULL if out of memory. */
static char **child_env(void)
{
	size_t n = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	char **env = calloc(n + 2, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (char **e = environ; e && *e; e++)
		if (strncmp(*e, METRICS_ENV, sizeof METRICS_ENV - 1) != 0)
			env[k++] = *e;
	env[k++] = (char *)METRICS_ENV "false";
	env[k] = NULL;
	return env;
}

/* ---- the run ---------------------------------------------------------- */

enum { STAGE_CHDIR = 1, STAGE_STDIO = 2, STAGE_EXEC = 3 };

#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_BE_LOWEST ((2 << 13) | 7) /* class best effort (2) in the top bits, level 7 */
#define AUTOGROUP_TRIES 3

/*
 * In the child, first thing: a process group of its own (which the parent
 * signals), and unless the priority is NORMAL a session of its own: the
 * scheduler's autogroups are per session, and nice values only order the
 * processes inside one autogroup.  Under systemd the daemon has a session
 * of its own, so a niced wrangler in it still took half a CPU from the
 * application (bench/README.md).  A new session is a new autogroup, given
 * the weight of nice 19.  Async-signal-safe calls only.
 */
static void child_session(int priority)
{
	if (priority == RS_WRANGLER_PRIO_NORMAL || setsid() < 0) {
		(void)setpgid(0, 0); /* the parent does it too for NORMAL; nothing to report */
		return;
	}
	int fd = open("/proc/self/autogroup", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return; /* no autogroups in this kernel */
	/* Unprivileged callers may set an autogroup's nice once per 100 ms system-wide (EAGAIN). */
	for (int i = 0; i < AUTOGROUP_TRIES; i++) {
		if (write(fd, "19", 2) == 2 || errno != EAGAIN)
			break;
		struct timespec pause = {0, 110 * 1000 * 1000};
		(void)nanosleep(&pause, NULL);
	}
	close(fd);
}

/*
 * In the child, just before exec: the process's own priorities (see
 * RS_WRANGLER_PRIO_* in wrangler.h), inherited by everything wrangler
 * starts.  Failures are harmless (wrangler then runs as we do).
 */
static void child_priority(int priority)
{
	if (priority == RS_WRANGLER_PRIO_NORMAL)
		return;
	(void)setpriority(PRIO_PROCESS, 0, 19);
	(void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_BE_LOWEST);
	if (priority == RS_WRANGLER_PRIO_IDLE) {
		struct sched_param sp;
		memset(&sp, 0, sizeof sp);
		(void)sched_setscheduler(0, SCHED_IDLE, &sp);
	}
}

/* In the child: only async-signal-safe calls from here on. */
static void child(const char *exe, char *const argv[], char *const envp[], const char *cwd, int priority,
		  int devnull, int out_w, int err_w, int report_w, pid_t parent)
{
	int msg[2];
	sigset_t none;
	struct sigaction dfl;

	child_session(priority);
	/*
	 * Die with us: a wrangler left running after we were killed would
	 * compete with the next cycle's.  (Its own children are its business;
	 * a timeout or a cancel still stops the whole group.)  If the parent
	 * died before this call, nobody would send the signal: leave now.
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == 0 && getppid() != parent)
		_exit(127);
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL); /* ignored signals would stay ignored across exec */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (cwd && chdir(cwd) != 0) {
		msg[0] = STAGE_CHDIR;
		goto fail;
	}
	if (dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) {
		msg[0] = STAGE_STDIO;
		goto fail;
	}
	/*
	 * Wrangler (node, and for --local the whole D1 runtime) costs seconds of
	 * CPU per call: it yields to the application beside us (bench/
	 * write_throughput.sh).  Only the child: our own read transaction must
	 * not be starved, or the application's WAL grows.
	 */
	child_priority(priority);
	execve(exe, argv, envp);
	msg[0] = STAGE_EXEC;
fail:
	msg[1] = errno;
	while (write(report_w, msg, sizeof msg) < 0 && errno == EINTR)
		;
	_exit(127);
}

/* What the child did, as seen by the parent. */
struct outcome {
	int spawn_stage, spawn_errno; /* non-zero: it never ran wrangler */
	int reaped;                   /* 1 if status is from waitpid */
	int status;
	int timed_out, cancelled;
};

/* Signal the child's process group; "no such group" is not an error. */
static void signal_group(pid_t pgid, int sig)
{
	if (kill(-pgid, sig) != 0 && errno != ESRCH)
		rs_warn("cannot signal wrangler", "pgid=%d signal=%d error=%d", (int)pgid, sig, errno);
}

static int ms_until(double now, double when)
{
	double d = (when - now) * 1000.0;
	if (d <= 0)
		return 0;
	return d > POLL_MS_MAX ? POLL_MS_MAX : (int)d + 1;
}

/*
 * Start the child and wait for it, capturing its output.  Returns RS_OK
 * once the child has been reaped (whatever it did; see oc), or an error if
 * it could not be started at all.
 */
static int run_child(const struct rs_wrangler_opts *o, const char *exe, char *const argv[],
		     struct capture *out, struct capture *errc, struct outcome *oc, rs_error *err)
{
	int p_out[2] = {-1, -1}, p_err[2] = {-1, -1}, p_rep[2] = {-1, -1}, devnull = -1;
	char **envp = NULL;
	int rc = RS_OK;
	pid_t pid = -1;

	envp = child_env();
	if (!envp)
		return rs_err(err, RS_ENOMEM, "out of memory");
	if (pipe2(p_out, O_CLOEXEC) != 0 || pipe2(p_err, O_CLOEXEC) != 0 || pipe2(p_rep, O_CLOEXEC) != 0 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = rs_err(err, RS_ELOCAL, "cannot prepare to run wrangler: %s", strerror(errno));
		goto out;
	}
	int *fds[] = {&p_out[0], &p_out[1], &p_err[0], &p_err[1], &p_rep[0], &p_rep[1], &devnull};
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
		if ((*fds[i] = fd_above_stdio(*fds[i])) < 0) {
			rc = rs_err(err, RS_ELOCAL, "cannot prepare to run wrangler: %s", strerror(errno));
			goto out;
		}
	}
	if (set_nonblock(p_out[0]) != 0 || set_nonblock(p_err[0]) != 0) {
		rc = rs_err(err, RS_ELOCAL, "cannot prepare to run wrangler: %s", strerror(errno));
		goto out;
	}

	pid_t self = getpid();
	pid = fork();
	if (pid < 0) {
		rc = rs_err(err, RS_ETRANSPORT, "cannot run wrangler '%s': fork: %s", exe, strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(exe, argv, envp, o->cwd, o->priority, devnull, p_out[1], p_err[1], p_rep[1], self);
	/*
	 * The group must exist before we might signal it: the child makes it,
	 * and we wait below for its exec (or failure) before anything else.
	 * In its own session it must be the child's setsid() that makes it
	 * (setsid fails for a group leader); otherwise make it here too
	 * (EACCES once the child has exec'd).
	 */
	if (o->priority == RS_WRANGLER_PRIO_NORMAL && setpgid(pid, pid) != 0 && errno != EACCES && errno != ESRCH)
		rs_warn("setpgid for wrangler failed", "error=%d", errno);
	close(p_out[1]);
	close(p_err[1]);
	close(p_rep[1]);
	close(devnull);
	p_out[1] = p_err[1] = p_rep[1] = devnull = -1;

	/* The report pipe closes on a successful exec, or carries {stage, errno}. */
	int msg[2];
	ssize_t got;
	while ((got = read(p_rep[0], msg, sizeof msg)) < 0 && errno == EINTR)
		;
	if (got == (ssize_t)sizeof msg) {
		oc->spawn_stage = msg[0];
		oc->spawn_errno = msg[1];
	}

	double t0 = rs_mono();
	double deadline = o->timeout_ms > 0 ? t0 + o->timeout_ms / 1000.0 : 0;
	double grace = (o->grace_ms > 0 ? o->grace_ms : GRACE_MS_DEFAULT) / 1000.0;
	double drain = grace < DRAIN_MS_MAX / 1000.0 ? grace : DRAIN_MS_MAX / 1000.0;
	double term_at = 0, kill_at = 0, exited_at = 0;
	int exited = 0;
	int rfd[2] = {p_out[0], p_err[0]};
	struct capture *cap[2] = {out, errc};

	while (1) {
		double now = rs_mono();
		if (!term_at && !exited && ((o->cancel && *o->cancel) || (deadline && now >= deadline))) {
			if (o->cancel && *o->cancel)
				oc->cancelled = 1;
			else
				oc->timed_out = 1;
			term_at = now;
			signal_group(pid, SIGTERM);
		}
		if (!exited) {
			siginfo_t si;
			memset(&si, 0, sizeof si);
			int wr = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
			if ((wr == 0 && si.si_pid == pid) || (wr < 0 && errno == ECHILD)) {
				exited = 1; /* ECHILD: reaped behind our back (SIGCHLD set to SIG_IGN) */
				exited_at = now;
			}
		}
		if (exited && rfd[0] < 0 && rfd[1] < 0)
			break;
		/*
		 * SIGKILL for the group: when the grace period after SIGTERM is
		 * over; at once when we stopped it and the child is gone (what is
		 * left are its children); or when the child exited by itself but
		 * something it started keeps our pipes open past the drain time.
		 */
		if (!kill_at && ((term_at && (exited || now >= term_at + grace)) ||
				 (exited && now >= exited_at + drain))) {
			signal_group(pid, SIGKILL);
			kill_at = now;
		}
		if (kill_at && exited && now >= kill_at + 1.0)
			break; /* a process outside the group holds the pipes: stop reading */

		int wait_ms = POLL_MS_MAX;
		if (deadline && !term_at)
			wait_ms = ms_until(now, deadline);
		else if (term_at && !kill_at)
			wait_ms = ms_until(now, term_at + grace);
		if (!exited && wait_ms > 20)
			wait_ms = 20; /* exit is noticed by polling: no SIGCHLD handler is ours to set */
		struct pollfd pf[2];
		nfds_t np = 0;
		for (int i = 0; i < 2; i++) {
			if (rfd[i] >= 0) {
				pf[np].fd = rfd[i];
				pf[np].events = POLLIN;
				pf[np].revents = 0;
				np++;
			}
		}
		if (poll(np ? pf : NULL, np, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			rc = rs_err(err, RS_ELOCAL, "poll: %s", strerror(errno));
			signal_group(pid, SIGKILL);
			break;
		}
		for (int i = 0; i < 2; i++) {
			while (rfd[i] >= 0) {
				char chunk[65536];
				ssize_t r = read(rfd[i], chunk, sizeof chunk);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
					break;
				if (r <= 0) { /* end of file, or an error: stop reading this one */
					close(rfd[i]);
					rfd[i] = -1;
					break;
				}
				if (capture_add(cap[i], chunk, (size_t)r) != 0) {
					if (rc == RS_OK)
						rc = rs_err(err, RS_ENOMEM, "out of memory");
					cap[i]->dropped += (size_t)r;
				}
			}
		}
	}
	p_out[0] = rfd[0];
	p_err[0] = rfd[1];

	int status = 0;
	pid_t w;
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	oc->reaped = w == pid;
	oc->status = status;
out:
	for (int i = 0; i < 2; i++) {
		if (p_out[i] >= 0)
			close(p_out[i]);
		if (p_err[i] >= 0)
			close(p_err[i]);
		if (p_rep[i] >= 0)
			close(p_rep[i]);
	}
	if (devnull >= 0)
		close(devnull);
	free(envp);
	return rc;
}

/* ---- reading the output ----------------------------------------------- */

/* Copy s without ANSI escape sequences (ESC [ ... final byte). */
static char *strip_ansi(const char *s)
{
	size_t n = strlen(s);
	char *o = malloc(n + 1), *p = o;
	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\033' && i + 1 < n && s[i + 1] == '[') {
			i += 2;
			while (i < n && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e))
				i++;
			continue;
		}
		*p++ = s[i];
	}
	*p = '\0';
	return o;
}

static char *trimmed_dup(const char *b, const char *e)
{
	while (b < e && (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	return strndup(b, (size_t)(e - b));
}

/*
 * wrangler's error from human output: the text after "[ERROR]" on its
 * line, else the last non-empty line that is not the log-file notice.
 * Returns a malloc'd string or NULL.
 */
static char *error_from_text(const char *raw)
{
	if (!raw || !*raw)
		return NULL;
	char *s = strip_ansi(raw);
	if (!s)
		return NULL;
	char *res = NULL;
	char *tag = strstr(s, "[ERROR]");
	if (tag) {
		tag += strlen("[ERROR]");
		res = trimmed_dup(tag, strchrnul(tag, '\n'));
	} else {
		const char *best = NULL, *best_end = NULL;
		for (const char *line = s; *line;) {
			const char *end = strchrnul(line, '\n');
			const char *b = line;
			while (b < end && (*b == ' ' || *b == '\t' || *b == '\r'))
				b++;
			if (b < end && !strstr(b, "Logs were written")) {
				best = b;
				best_end = end;
			}
			line = *end ? end + 1 : end;
		}
		if (best)
			res = trimmed_dup(best, best_end);
	}
	free(s);
	if (res && !*res) {
		free(res);
		res = NULL;
	}
	return res;
}

/* {"error": {"text": ..., "notes": [{"text": ...}]}} -> "text; note; note" (malloc'd) or NULL. */
static char *error_from_json(json_t *j)
{
	json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
	if (!e)
		return NULL;
	if (json_is_string(e))
		return strdup(json_string_value(e));
	const char *text = json_string_value(json_object_get(e, "text"));
	if (!text)
		text = json_string_value(json_object_get(e, "message"));
	if (!text)
		return NULL;
	size_t len = strlen(text) + 1;
	json_t *notes = json_object_get(e, "notes"), *nt;
	size_t i;
	json_array_foreach(notes, i, nt) {
		const char *t = json_string_value(json_object_get(nt, "text"));
		if (t && *t)
			len += strlen(t) + 2;
	}
	char *out = malloc(len);
	if (!out)
		return NULL;
	strcpy(out, text);
	json_array_foreach(notes, i, nt) {
		const char *t = json_string_value(json_object_get(nt, "text"));
		if (t && *t) {
			strcat(out, "; ");
			strcat(out, t);
		}
	}
	return out;
}

/* Parse stdout: all of it, else from the first line that opens a JSON value. */
static json_t *parse_output(const char *s, size_t len)
{
	if (!s || !len)
		return NULL;
	json_error_t je;
	json_t *j = json_loadb(s, len, 0, &je);
	if (j)
		return j;
	for (const char *line = s; line < s + len;) {
		if (*line == '[' || *line == '{') {
			j = json_loadb(line, len - (size_t)(line - s), JSON_DISABLE_EOF_CHECK, &je);
			if (j)
				return j;
		}
		const char *nl = memchr(line, '\n', len - (size_t)(line - s));
		if (!nl)
			break;
		line = nl + 1;
	}
	return NULL;
}

/* ---- public entry points ------------------------------------------------ */

void rs_wrangler_result_free(struct rs_wrangler_result *res)
{
	if (!res)
		return;
	free(res->out);
	free(res->errout);
	free(res->error_text);
	json_decref(res->json);
	memset(res, 0, sizeof *res);
}

size_t rs_wrangler_statements(const struct rs_wrangler_result *res)
{
	return res && json_is_array(res->json) ? json_array_size(res->json) : 0;
}

json_t *rs_wrangler_rows(const struct rs_wrangler_result *res, size_t n)
{
	if (!res || !json_is_array(res->json))
		return NULL;
	json_t *r = json_object_get(json_array_get(res->json, n), "results");
	return json_is_array(r) ? r : NULL;
}

int rs_wrangler_error_is_unique(const struct rs_wrangler_result *res, const char *table_dot_column)
{
	static const char tag[] = "UNIQUE constraint failed: ";
	if (!res || !table_dot_column || !*table_dot_column || (res->exit_code == 0 && !res->error_text))
		return 0;
	size_t want = strlen(table_dot_column);
	for (const char *p = res->error_text; p && (p = strstr(p, tag)) != NULL;) {
		p += sizeof tag - 1;
		/* SQLite's list ends the message or is followed by ": SQLITE_..." */
		size_t n = strcspn(p, ":\r\n");
		while (n && p[n - 1] == ' ')
			n--;
		if (n == want && memcmp(p, table_dot_column, n) == 0)
			return 1;
	}
	return 0;
}

int rs_wrangler_error_is_sql(const struct rs_wrangler_result *res)
{
	if (!res || (res->exit_code == 0 && !res->error_text) || res->timed_out || res->cancelled || res->term_signal)
		return 0;
	for (const char *p = res->error_text; p && (p = strstr(p, "SQLITE_")) != NULL; p++)
		if (p[7] >= 'A' && p[7] <= 'Z')
			return 1;
	return 0;
}

/*
 * Printable text for a message: the first bytes of s, control characters
 * (line breaks, escapes) as spaces, no trailing space.
 */
static void printable(char *out, size_t size, const char *s)
{
	size_t n = 0;
	for (; s && *s && n + 1 < size; s++)
		out[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* RS_EREMOTE "wrangler d1 execute DB: <what>", what on one printable line. */
static int remote_err(rs_error *err, const char *db, const char *what)
{
	char line[sizeof err->message];
	printable(line, sizeof line, what);
	return rs_err(err, RS_EREMOTE, "wrangler d1 execute %s: %s", db, line);
}

int rs_wrangler_read_output(struct rs_wrangler_result *res, const char *db, rs_error *err)
{
	json_decref(res->json);
	free(res->error_text);
	res->json = parse_output(res->out, res->out_len);
	res->error_text = error_from_json(res->json);
	if (res->term_signal)
		return rs_err(err, RS_ETRANSPORT, "wrangler d1 execute %s: killed by signal %d (%s)", db,
			      res->term_signal, strsignal(res->term_signal));
	if (res->exit_code != 0) {
		if (!res->error_text)
			res->error_text = error_from_text(res->errout);
		if (!res->error_text && !res->json)
			res->error_text = error_from_text(res->out);
		if (res->error_text)
			return remote_err(err, db, res->error_text);
		return rs_err(err, RS_EREMOTE, "wrangler d1 execute %s: exited with status %d and no message", db,
			      res->exit_code);
	}
	if (res->error_text)
		return remote_err(err, db, res->error_text);
	/* Success must be said: a JSON array with one result per statement, each "success": true. */
	if (!json_is_array(res->json) || json_array_size(res->json) == 0) {
		char head[201];
		printable(head, sizeof head, res->out);
		return rs_err(err, RS_EREMOTE, "wrangler d1 execute %s: %s%s: \"%s\"", db,
			      json_is_array(res->json) ? "no statement results in the output"
						       : "output is not a JSON array",
			      res->out_dropped ? " (truncated)" : "", head);
	}
	size_t i;
	json_t *st;
	json_array_foreach(res->json, i, st) {
		if (json_is_true(json_object_get(st, "success")))
			continue;
		char *t = error_from_json(st);
		if (!t) {
			const char *e = json_string_value(json_object_get(st, "error"));
			t = e ? strdup(e) : NULL;
		}
		res->error_text = t;
		char what[sizeof err->message];
		snprintf(what, sizeof what, "statement %zu %s%s%s", i + 1, json_is_object(st) ? "failed" : "is not an object",
			 t ? ": " : "", t ? t : "");
		return remote_err(err, db, what);
	}
	return RS_OK;
}

/*
 * Run wrangler with `flag value`; the message names the database.  See
 * rs_wrangler_exec_file() for the contract.
 */
static int exec_common(const struct rs_wrangler_opts *o, const char *flag, const char *value,
		       struct rs_wrangler_result *res, rs_error *err)
{
	if (!res)
		return rs_err(err, RS_EUSAGE, "wrangler: no result structure");
	memset(res, 0, sizeof *res);
	res->exit_code = -1;
	if (!o || !o->database || !*o->database || !value)
		return rs_err(err, RS_EUSAGE, "wrangler d1 execute: database and %s are required", flag);
	if (o->priority < RS_WRANGLER_PRIO_LOW || o->priority > RS_WRANGLER_PRIO_NORMAL)
		return rs_err(err, RS_EUSAGE, "wrangler d1 execute: unknown priority %d", o->priority);
	const char *db = o->database;
	if (db[0] == '-')
		return rs_err(err, RS_EUSAGE, "wrangler d1 execute: database name \"%s\" looks like an option", db);
	const char *name = o->wrangler && *o->wrangler ? o->wrangler : "wrangler";

	char exe[PATH_MAX];
	int e = resolve_exe(name, exe, sizeof exe);
	if (e != 0)
		return rs_err(err, RS_ETRANSPORT, "cannot run wrangler '%s': %s%s", name, strerror(e),
			      strchr(name, '/') ? "" : " (looked in PATH)");

	/*
	 * Values that begin with '-' would be read as options: a file path
	 * gets "./", SQL goes in the "--command=SQL" form.
	 */
	char *file_arg = NULL, *cmd_arg = NULL, *cfg_arg = NULL;
	const char *argv[16];
	int ac = 0, rc;
	argv[ac++] = name;
	argv[ac++] = "d1";
	argv[ac++] = "execute";
	argv[ac++] = db;
	if (strcmp(flag, "--command") == 0) {
		if (asprintf(&cmd_arg, "--command=%s", value) < 0)
			cmd_arg = NULL;
		argv[ac++] = cmd_arg;
	} else {
		argv[ac++] = flag;
		if (value[0] == '-' && asprintf(&file_arg, "./%s", value) < 0)
			file_arg = NULL;
		argv[ac++] = value[0] == '-' ? file_arg : value;
	}
	if (o->location == RS_WRANGLER_LOCAL)
		argv[ac++] = "--local";
	else if (o->location == RS_WRANGLER_REMOTE)
		argv[ac++] = "--remote";
	if (o->config && *o->config) {
		argv[ac++] = "--config";
		if (o->config[0] == '-' && asprintf(&cfg_arg, "./%s", o->config) < 0)
			cfg_arg = NULL;
		argv[ac++] = o->config[0] == '-' ? cfg_arg : o->config;
	}
	argv[ac++] = "--json";
	argv[ac++] = "--yes";
	argv[ac] = NULL;
	for (int i = 0; i < ac; i++) {
		if (!argv[i]) {
			rc = rs_err(err, RS_ENOMEM, "out of memory");
			goto done;
		}
	}

	struct capture out = {.max = o->output_max ? o->output_max : OUTPUT_MAX_DEFAULT};
	struct capture errc = {.max = out.max};
	struct outcome oc;
	memset(&oc, 0, sizeof oc);
	double t0 = rs_mono();
	rs_debug("wrangler start", "database=%s mode=%s", db, flag + 2);
	rc = run_child(o, exe, (char *const *)argv, &out, &errc, &oc, err);
	res->seconds = rs_mono() - t0;
	res->out = out.data ? out.data : strdup("");
	res->out_len = out.len;
	res->out_dropped = out.dropped;
	res->errout = errc.data ? errc.data : strdup("");
	res->err_len = errc.len;
	res->err_dropped = errc.dropped;
	res->timed_out = oc.timed_out;
	res->cancelled = oc.cancelled;
	if (oc.reaped && WIFEXITED(oc.status))
		res->exit_code = WEXITSTATUS(oc.status);
	else if (oc.reaped && WIFSIGNALED(oc.status))
		res->term_signal = WTERMSIG(oc.status);
	if (rc != RS_OK)
		goto done;
	if (!res->out || !res->errout) {
		rc = rs_err(err, RS_ENOMEM, "out of memory");
		goto done;
	}
	rs_debug("wrangler done", "database=%s exit=%d signal=%d ms=%.0f", db, res->exit_code, res->term_signal,
		 res->seconds * 1000);
	if (out.dropped || errc.dropped)
		rs_warn("wrangler output truncated", "database=%s stdout_dropped=%zu stderr_dropped=%zu", db,
			out.dropped, errc.dropped);

	if (oc.spawn_stage) {
		if (oc.spawn_stage == STAGE_CHDIR)
			rc = rs_err(err, RS_ETRANSPORT, "cannot run wrangler '%s': directory %s: %s", name, o->cwd,
				    strerror(oc.spawn_errno));
		else
			rc = rs_err(err, RS_ETRANSPORT, "cannot run wrangler '%s': %s", name,
				    strerror(oc.spawn_errno));
		goto done;
	}
	if (oc.cancelled) {
		rc = rs_err(err, RS_EABORT, "wrangler d1 execute %s: stopped by request after %.1f s", db,
			    res->seconds);
		goto done;
	}
	if (oc.timed_out) {
		rc = rs_err(err, RS_ETRANSPORT, "wrangler d1 execute %s: timed out after %g s", db,
			    o->timeout_ms / 1000.0);
		goto done;
	}

	rc = rs_wrangler_read_output(res, db, err);
done:
	free(file_arg);
	free(cmd_arg);
	free(cfg_arg);
	return rc;
}

int rs_wrangler_exec_file(const struct rs_wrangler_opts *o, const char *sql_path,
			  struct rs_wrangler_result *res, rs_error *err)
{
	return exec_common(o, "--file", sql_path, res, err);
}

int rs_wrangler_exec_command(const struct rs_wrangler_opts *o, const char *sql,
			     struct rs_wrangler_result *res, rs_error *err)
{
	return exec_common(o, "--command", sql, res, err);
}
