#ifndef BERTH_DEVICES_H
#define BERTH_DEVICES_H

/// Refuses the character devices (majors[i], minors[i]) to every process of the cgroup version 2
/// group open as `cgroup_fd`, with a BPF device program attached to it, as systemd does for
/// DeviceAllow=. Everything else stays allowed. Returns 0, or -errno of the step that failed;
/// `log` (may be NULL) gets the verifier's words when the program is refused.
int berth_deny_devices(int cgroup_fd, const int *majors, const int *minors, int count, char *log, unsigned log_size);

/// Whether this process may load a BPF device program at all: 0, or -errno (EPERM without
/// CAP_BPF or CAP_SYS_ADMIN).
int berth_device_filter_probe(void);

#endif
