/*
 * test_lock.c: the per-database lock file: the pid it records, RS_EBUSY
 * with the holder's pid for a second process (fork) and a second acquire in
 * the same process, release letting the other side in, close-on-exec, and
 * the messages for paths that cannot be locked.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "core/util.h"
#include "core/lock.h"

static char dir[] = "/tmp/rs-test-lock-XXXXXX";
static char path[256];

static void busy_message(char *buf, size_t size, long pid)
{
	snprintf(buf, size, "%s: another resort-sync (pid %ld) is syncing this database", path, pid);
}

TEST(acquire_writes_pid_and_release_keeps_file)
{
	rs_lock *lk = NULL;
	rs_error e = {0};
	mode_t old = umask(022);
	int rc = rs_lock_acquire(&lk, path, &e);
	umask(old);
	CHECK_MSG(rc == RS_OK, "acquire: %s", e.message);
	CHECK_EQ_STR(rs_lock_path(lk), path);
	char *text = NULL;
	CHECK_EQ_INT(rs_read_file(path, &text, NULL, &e), RS_OK);
	char want[32];
	snprintf(want, sizeof want, "%ld\n", (long)getpid());
	int same = strcmp(text, want) == 0;
	free(text);
	struct stat st;
	int src = stat(path, &st);
	rs_lock_release(lk);
	CHECK(same);
	CHECK_EQ_INT(src, 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0644);
	CHECK_EQ_INT(access(path, F_OK), 0);  /* release leaves the file */
	rs_lock_release(NULL);
}

/* Child side of the fork test; returns its exit code (0 = as expected). */
static int child_main(int to_parent, int from_parent, long parent_pid)
{
	rs_lock *lk = NULL;
	rs_error e = {0};
	char want[512];
	busy_message(want, sizeof want, parent_pid);
	int rc = rs_lock_acquire(&lk, path, &e);
	if (rc != RS_EBUSY)
		return 1;
	if (strcmp(e.message, want) != 0)
		return 2;
	char c = 'b';
	if (write(to_parent, &c, 1) != 1)
		return 5;
	if (read(from_parent, &c, 1) != 1)  /* the parent has released */
		return 6;
	rs_error e2 = {0};
	if (rs_lock_acquire(&lk, path, &e2) != RS_OK)
		return 3;
	char *text = NULL;
	char mine[32];
	snprintf(mine, sizeof mine, "%ld\n", (long)getpid());
	int ok = rs_read_file(path, &text, NULL, &e2) == RS_OK && strcmp(text, mine) == 0;
	free(text);
	rs_lock_release(lk);
	return ok ? 0 : 4;
}

TEST(second_process_gets_busy_until_release)
{
	rs_lock *lk = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_lock_acquire(&lk, path, &e), RS_OK);
	int up[2], down[2];
	CHECK_EQ_INT(pipe(up), 0);
	CHECK_EQ_INT(pipe(down), 0);
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		_exit(child_main(up[1], down[0], (long)getppid()));
	}
	close(up[1]);
	close(down[0]);
	char c;
	ssize_t n = read(up[0], &c, 1);  /* the child saw RS_EBUSY */
	/*
	 * The child inherited the lock's descriptor through fork(); release
	 * must still let it in (an explicit unlock, not just close()).
	 */
	rs_lock_release(lk);
	c = 'r';
	ssize_t w = write(down[1], &c, 1);
	close(up[0]);
	close(down[1]);
	int ws = 0;
	pid_t got;
	while ((got = waitpid(pid, &ws, 0)) < 0 && errno == EINTR)
		;
	CHECK_EQ_INT(got, pid);
	CHECK_MSG(WIFEXITED(ws), "child did not exit normally");
	static const char *const why[] = {
		"ok", "child's first acquire was not RS_EBUSY",
		"child's RS_EBUSY message did not name the parent's pid",
		"child could not acquire after release", "lock file did not hold the child's pid",
		"pipe write", "pipe read"};
	int code = WEXITSTATUS(ws);
	CHECK_MSG(code == 0, "child exit %d: %s", code, code < 7 ? why[code] : "?");
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(w, 1);
}

TEST(same_process_twice_is_busy)
{
	rs_lock *a = NULL, *b = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_lock_acquire(&a, path, &e), RS_OK);
	int rc = rs_lock_acquire(&b, path, &e);
	char want[512];
	busy_message(want, sizeof want, (long)getpid());
	rs_lock_release(a);
	CHECK_EQ_INT(rc, RS_EBUSY);
	CHECK(b == NULL);
	CHECK_EQ_STR(e.message, want);
	CHECK_EQ_INT(rs_lock_acquire(&b, path, &e), RS_OK);
	rs_lock_release(b);
}

TEST(unknown_holder_pid)
{
	rs_lock *a = NULL, *b = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_lock_acquire(&a, path, &e), RS_OK);
	int rc = truncate(path, 0);
	int rc2 = rs_lock_acquire(&b, path, &e);
	rs_lock_release(a);
	char want[512];
	snprintf(want, sizeof want,
		 "%s: another resort-sync (pid unknown) is syncing this database", path);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(rc2, RS_EBUSY);
	CHECK_EQ_STR(e.message, want);
}

/* 1 if some descriptor of this process names `p` and every such one is close-on-exec. */
static int fds_for_path_are_cloexec(const char *p)
{
	DIR *d = opendir("/proc/self/fd");
	int found = 0, all = 1;
	if (!d)
		return 0;
	struct dirent *de;
	char real[PATH_MAX];
	if (!realpath(p, real)) {
		closedir(d);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		char link[300], target[PATH_MAX];
		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof link, "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strcmp(target, real) != 0)
			continue;
		found = 1;
		int flags = fcntl(atoi(de->d_name), F_GETFD);
		if (flags < 0 || !(flags & FD_CLOEXEC))
			all = 0;
	}
	closedir(d);
	return found && all;
}

TEST(close_on_exec)
{
	rs_lock *a = NULL;
	rs_error e = {0};
	CHECK_EQ_INT(rs_lock_acquire(&a, path, &e), RS_OK);
	int ok = fds_for_path_are_cloexec(path);
	rs_lock_release(a);
	CHECK(ok);
}

TEST(unlockable_paths)
{
	rs_lock *a = NULL;
	rs_error e = {0};
	char missing[300];
	snprintf(missing, sizeof missing, "%s/no/such/dir/x.lock", dir);
	CHECK_EQ_INT(rs_lock_acquire(&a, missing, &e), RS_ELOCAL);
	CHECK(a == NULL);
	CHECK(strncmp(e.message, missing, strlen(missing)) == 0);
	CHECK(strstr(e.message, "No such file") != NULL);
	rs_error e2 = {0};
	CHECK_EQ_INT(rs_lock_acquire(&a, dir, &e2), RS_ELOCAL);  /* a directory */
	CHECK(strncmp(e2.message, dir, strlen(dir)) == 0);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		printf("FAIL setup: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(path, sizeof path, "%s/app.db.resort-sync.lock", dir);
	RUN(acquire_writes_pid_and_release_keeps_file);
	RUN(second_process_gets_busy_until_release);
	RUN(same_process_twice_is_busy);
	RUN(unknown_holder_pid);
	RUN(close_on_exec);
	RUN(unlockable_paths);
	unlink(path);
	rmdir(dir);
	TEST_MAIN_END;
}
