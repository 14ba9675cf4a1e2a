// A cgroup version 2 group has no devices.deny: device access is decided by BPF programs of
// type BPF_PROG_TYPE_CGROUP_DEVICE attached to the group. This builds one from a deny list.
#include "berth_devices.h"

#include <errno.h>
#include <stddef.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int bpf(int command, union bpf_attr *attr) {
    return (int)syscall(__NR_bpf, command, attr, sizeof(*attr));
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    struct bpf_insn i;
    memset(&i, 0, sizeof(i));
    i.code = code;
    i.dst_reg = dst;
    i.src_reg = src;
    i.off = off;
    i.imm = imm;
    return i;
}

// The program, for n denied devices:
//   r2 = ctx->access_type & 0xffff; if r2 != BPF_DEVCG_DEV_CHAR goto allow
//   r3 = ctx->major; r4 = ctx->minor
//   for each denied (major, minor): if r3 != major goto next; if r4 == minor goto deny; next:
//   allow: r0 = 1; exit
//   deny:  r0 = 0; exit
static int load(const int *majors, const int *minors, int count, char *log, unsigned log_size) {
    // With nothing to deny, "deny" would be unreachable, which the verifier refuses: allow all.
    int total = count == 0 ? 2 : 5 + 2 * count + 4;
    struct bpf_insn *prog = calloc((size_t)total, sizeof(struct bpf_insn));
    if (!prog) return -ENOMEM;
    int n = 0;
    if (count == 0) {
        prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
        prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        goto loaded;
    }
    const int allow = 5 + 2 * count;  // index of "r0 = 1"
    const int deny = allow + 2;       // index of "r0 = 0"
    prog[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
    prog[n++] = insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
    prog[n] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, (int16_t)(allow - n - 1), BPF_DEVCG_DEV_CHAR);
    n++;
    prog[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, major), 0);
    prog[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0);
    for (int i = 0; i < count; i++) {
        prog[n] = insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_3, 0, 1, majors[i]);
        n++;
        prog[n] = insn(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_4, 0, (int16_t)(deny - n - 1), minors[i]);
        n++;
    }
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
    prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    prog[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
    prog[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

loaded:;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uint64_t)(uintptr_t)prog;
    attr.insn_cnt = (uint32_t)n;
    attr.license = (uint64_t)(uintptr_t) "GPL";
    if (log && log_size > 0) {
        log[0] = 0;
        attr.log_buf = (uint64_t)(uintptr_t)log;
        attr.log_size = log_size;
        attr.log_level = 1;
    }
    int fd = bpf(BPF_PROG_LOAD, &attr);
    int saved = errno;
    free(prog);
    return fd >= 0 ? fd : -saved;
}

int berth_deny_devices(int cgroup_fd, const int *majors, const int *minors, int count, char *log, unsigned log_size) {
    if (count < 0 || count > 4096) return -EINVAL;
    int prog = load(majors, minors, count, log, log_size);
    if (prog < 0) return prog;
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t)cgroup_fd;
    attr.attach_bpf_fd = (uint32_t)prog;
    attr.attach_type = BPF_CGROUP_DEVICE;
    int result = bpf(BPF_PROG_ATTACH, &attr) == 0 ? 0 : -errno;
    // The group holds the program now; this descriptor is not needed.
    close(prog);
    return result;
}

int berth_device_filter_probe(void) {
    int prog = load(NULL, NULL, 0, NULL, 0);
    if (prog < 0) return prog;
    close(prog);
    return 0;
}
