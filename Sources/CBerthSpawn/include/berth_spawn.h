#ifndef BERTH_SPAWN_H
#define BERTH_SPAWN_H

#include <sys/types.h>

/// What a runner is started with. Everything the child does between fork and exec is in C,
/// because only async-signal-safe calls are allowed there in a multithreaded process.
typedef struct {
    const char *path;
    char *const *argv;
    char *const *envp;
    /// Become `uid`, `gid` and `groups` before anything below is done (when `set_ids` is set).
    int set_ids;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
    /// Descriptors that become the child's 0, 1, 2, then 3, 4, ... in order; all others close.
    const int *fds;
    int fd_count;
    /// Folder to start in; umask of the child.
    const char *cwd;
    mode_t umask;
    /// Folders made (as `mkdir -p`, mode 0755 less the umask) and then checked writable, and
    /// files opened for reading, with the rights of the identity above, before exec: so a
    /// runner whose paths it may not use fails before it runs, with the path and the errno.
    const char *const *make_folders;
    int make_folder_count;
    const char *const *read_files;
    int read_file_count;
    /// `cgroup.procs` (or `tasks`) files of the groups the runner runs in, open for writing:
    /// the child writes its own pid into each before anything else, so nothing it starts can
    /// run outside them, and before it gives up root, which owns those files.
    const int *cgroup_fds;
    int cgroup_fd_count;
} berth_spawn_request;

/// Why a spawn failed: the step (see berth_spawn_step_name), the errno, and which path.
typedef struct {
    int step;
    int error;
    int index;
} berth_spawn_failure;

enum {
    BERTH_STEP_FORK = 1,
    BERTH_STEP_IDS,
    BERTH_STEP_FDS,
    BERTH_STEP_MKDIR,
    BERTH_STEP_WRITABLE,
    BERTH_STEP_READ,
    BERTH_STEP_CWD,
    BERTH_STEP_EXEC,
    BERTH_STEP_CGROUP,
};

/// Starts the child in its own process group with default signal handling. Returns 0 and the
/// pid once the child has exec'ed; -1 and `failure` if it did not (the child is reaped).
int berth_spawn(const berth_spawn_request *request, pid_t *pid, berth_spawn_failure *failure);

/// Writes `length` bytes to a new file at `path` (O_NOFOLLOW: a symlink there fails) with the
/// file-system rights of `uid`, `gid` and `groups`, for this thread only, restored before it
/// returns. The file is created owned by `uid`. Returns 0, or an errno.
int berth_write_file_as(uid_t uid, gid_t gid, const gid_t *groups, int group_count, const char *path,
                        const void *bytes, size_t length, mode_t mode);

/// Gives the socket at `path` to group `gid` (unless it is (gid_t)-1) and mode `mode`, by
/// descriptor: a link put in its place is not followed, and anything but a socket owned by
/// this process's user is left alone. Returns 0, or an errno (ENOTSOCK, EPERM, ...).
int berth_restrict_socket(const char *path, gid_t gid, mode_t mode);

/// O_PATH, which Swift's Glibc module leaves out with the other GNU extensions.
int berth_o_path(void);

#endif
