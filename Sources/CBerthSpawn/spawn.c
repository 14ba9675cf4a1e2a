#define _GNU_SOURCE
#include "berth_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* The child after fork: one thread, a copy of a multithreaded parent. Only async-signal-safe
   calls from here to execve; raw system calls for credentials so no libc lock is touched. */

static void fail(int fd, int step, int index) {
    berth_spawn_failure failure = { step, errno, index };
    ssize_t ignored = write(fd, &failure, sizeof failure);
    (void)ignored;
    _exit(127);
}

static void close_from(int lowest, int keep) {
    if (keep >= lowest) {
        if (keep > lowest && syscall(SYS_close_range, lowest, keep - 1, 0) != 0) {
            for (int fd = lowest; fd < keep; fd++) close(fd);
        }
        lowest = keep + 1;
    }
    if (syscall(SYS_close_range, lowest, ~0U, 0) == 0) return;
    struct rlimit limit;
    long top = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY ? (long)limit.rlim_cur : 65536;
    if (top > 1048576) top = 1048576;
    for (long fd = lowest; fd < top; fd++) close((int)fd);
}

/* mkdir -p with the caller's rights; an existing folder on the way is fine. */
static int make_folders(const char *path) {
    char buffer[PATH_MAX];
    size_t length = strlen(path);
    if (length == 0 || length >= sizeof buffer) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buffer, path, length + 1);
    for (size_t i = 1; i <= length; i++) {
        if (buffer[i] != '/' && buffer[i] != '\0') continue;
        char saved = buffer[i];
        buffer[i] = '\0';
        if (mkdir(buffer, 0755) != 0 && errno != EEXIST) return -1;
        buffer[i] = saved;
    }
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static void child(const berth_spawn_request *r, int report) {
    /* 1. Default handling of every signal, then unblock them all (the parent blocked them
          around fork). */
    struct sigaction defaults;
    memset(&defaults, 0, sizeof defaults);
    defaults.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &defaults, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* 2. Its own process group, so a stop reaches its children too; and its cgroups. */
    setpgid(0, 0);
    if (r->cgroup_fd_count > 0) {
        char digits[16];
        int length = 0;
        for (pid_t pid = getpid(); pid > 0 && length < (int)sizeof digits; pid /= 10) digits[length++] = (char)('0' + pid % 10);
        char text[17];
        for (int i = 0; i < length; i++) text[i] = digits[length - 1 - i];
        text[length] = '\n';
        for (int i = 0; i < r->cgroup_fd_count; i++) {
            if (write(r->cgroup_fds[i], text, (size_t)length + 1) != length + 1) fail(report, BERTH_STEP_CGROUP, i);
        }
    }

    /* 3. Descriptors: moved above every target number first, so none is overwritten. */
    int base = r->fd_count + 3;
    int moved[r->fd_count > 0 ? r->fd_count : 1];
    int error_fd = fcntl(report, F_DUPFD_CLOEXEC, base);
    if (error_fd < 0) fail(report, BERTH_STEP_FDS, -1);
    report = error_fd;
    for (int i = 0; i < r->fd_count; i++) {
        moved[i] = fcntl(r->fds[i], F_DUPFD_CLOEXEC, base);
        if (moved[i] < 0) fail(report, BERTH_STEP_FDS, i);
    }
    for (int i = 0; i < r->fd_count; i++) {
        if (dup2(moved[i], i) < 0) fail(report, BERTH_STEP_FDS, i);
    }
    close_from(r->fd_count, report);

    /* 4. The identity, all of it, before any file is touched. */
    if (r->set_ids) {
        if (syscall(SYS_setgroups, (size_t)r->group_count, r->groups) != 0) fail(report, BERTH_STEP_IDS, 0);
        if (syscall(SYS_setresgid, r->gid, r->gid, r->gid) != 0) fail(report, BERTH_STEP_IDS, 1);
        if (syscall(SYS_setresuid, r->uid, r->uid, r->uid) != 0) fail(report, BERTH_STEP_IDS, 2);
        if ((uid_t)syscall(SYS_geteuid) != r->uid || (gid_t)syscall(SYS_getegid) != r->gid) {
            errno = EPERM;
            fail(report, BERTH_STEP_IDS, 3);
        }
    }
    umask(r->umask);

    /* 5. The job's paths, with exactly the rights it runs with. */
    for (int i = 0; i < r->make_folder_count; i++) {
        if (make_folders(r->make_folders[i]) != 0) fail(report, BERTH_STEP_MKDIR, i);
        if (access(r->make_folders[i], W_OK | X_OK) != 0) fail(report, BERTH_STEP_WRITABLE, i);
    }
    for (int i = 0; i < r->read_file_count; i++) {
        int fd = open(r->read_files[i], O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) fail(report, BERTH_STEP_READ, i);
        close(fd);
    }
    if (r->cwd && chdir(r->cwd) != 0) fail(report, BERTH_STEP_CWD, 0);

    execve(r->path, r->argv, r->envp);
    fail(report, BERTH_STEP_EXEC, 0);
}

int berth_spawn(const berth_spawn_request *request, pid_t *pid, berth_spawn_failure *failure) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        *failure = (berth_spawn_failure){ BERTH_STEP_FORK, errno, -1 };
        return -1;
    }
    /* No signal handler of the parent's may run in the child before its handlers are reset. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t child_pid = fork();
    if (child_pid == 0) {
        close(report[0]);
        child(request, report[1]);
    }
    int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(report[1]);
    if (child_pid < 0) {
        close(report[0]);
        *failure = (berth_spawn_failure){ BERTH_STEP_FORK, fork_error, -1 };
        return -1;
    }
    /* Also here, so the group exists before the caller signals it. */
    setpgid(child_pid, child_pid);
    berth_spawn_failure reported;
    ssize_t count;
    do {
        count = read(report[0], &reported, sizeof reported);
    } while (count < 0 && errno == EINTR);
    close(report[0]);
    if (count == (ssize_t)sizeof reported) {
        int status;
        while (waitpid(child_pid, &status, 0) < 0 && errno == EINTR) {}
        *failure = reported;
        return -1;
    }
    *pid = child_pid;
    return 0;
}

int berth_write_file_as(uid_t uid, gid_t gid, const gid_t *groups, int group_count, const char *path,
                        const void *bytes, size_t length, mode_t mode) {
    /* setfsuid, setfsgid and the raw setgroups act on this thread alone (glibc's wrappers of
       setgroups would change every thread of berthd). */
    gid_t saved_groups[NGROUPS_MAX];
    long saved_count = syscall(SYS_getgroups, NGROUPS_MAX, saved_groups);
    if (saved_count < 0) return errno;
    if (syscall(SYS_setgroups, (size_t)group_count, groups) != 0) return errno;
    uid_t saved_fsuid = (uid_t)syscall(SYS_setfsuid, uid);
    gid_t saved_fsgid = (gid_t)syscall(SYS_setfsgid, gid);
    /* setfsgid answers with the old value whether or not it worked: ask again to be sure. */
    int result = 0;
    if ((uid_t)syscall(SYS_setfsuid, -1) != uid || (gid_t)syscall(SYS_setfsgid, -1) != gid) {
        result = EPERM;
    } else {
        /* A file made now is the caller's own, so setting its mode is setting what berthd made. */
        if (unlink(path) != 0 && errno != ENOENT) {
            result = errno;
        } else {
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
            if (fd < 0) {
                result = errno;
            } else {
                const char *next = bytes;
                size_t left = length;
                while (left > 0 && result == 0) {
                    ssize_t wrote = write(fd, next, left);
                    if (wrote < 0 && errno == EINTR) continue;
                    if (wrote < 0) result = errno;
                    else { next += wrote; left -= (size_t)wrote; }
                }
                if (result == 0 && fchmod(fd, mode) != 0) result = errno;
                if (close(fd) != 0 && result == 0) result = errno;
            }
        }
    }
    syscall(SYS_setfsuid, saved_fsuid);
    syscall(SYS_setfsgid, saved_fsgid);
    syscall(SYS_setgroups, (size_t)saved_count, saved_groups);
    return result;
}

int berth_o_path(void) { return O_PATH; }

int berth_restrict_socket(const char *path, gid_t gid, mode_t mode) {
    int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    struct stat info;
    int result = 0;
    if (fstat(fd, &info) != 0) {
        result = errno;
    } else if (!S_ISSOCK(info.st_mode)) {
        result = ENOTSOCK;
    } else if (info.st_uid != geteuid()) {
        result = EPERM;
    } else if (gid != (gid_t)-1 && fchownat(fd, "", (uid_t)-1, gid, AT_EMPTY_PATH) != 0) {
        result = errno;
    } else {
        /* chmod has no descriptor form for an O_PATH descriptor; its /proc link is the inode. */
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        if (chmod(link, mode) != 0) result = errno;
    }
    close(fd);
    return result;
}
