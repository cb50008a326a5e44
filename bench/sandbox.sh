#!/usr/bin/env bash
# Sandbox overhead: a C hello world, compiled once, run bare, under bubblewrap with the
# worker's options (as an unprivileged host uid of the sandbox's range, 65534 inside), and as
# a full sandbox step (that plus a v1/v2 cgroup created, limited and removed around it, as
# queue-worker/sandbox_cgroup.c does).
# Uses hyperfine when installed, else a timed loop. Needs root.
#   bench/sandbox.sh [runs]   (default 100)
set -euo pipefail

runs=${1:-100}
# the last uid of the worker's range (queue-worker/sandbox_uid.h), and the worker's gid
uid=$(( ${SANDBOX_UID_BASE:-2147418112} + ${SANDBOX_UID_COUNT:-1024} - 1 ))
gid=${SANDBOX_GID:-65534}
[ "$(id -u)" -eq 0 ] || { echo "bench/sandbox.sh: run as root" >&2; exit 1; }
command -v bwrap >/dev/null || { echo "bench/sandbox.sh: bubblewrap is not installed" >&2; exit 1; }

# The uid is held as a worker holds it, by a lock on its file in the worker's lock directory
# (queue-worker/sandbox_uid.c): a worker on this host neither runs a step as it meanwhile nor,
# finding a process of a uid it is about to hand out, kills this benchmark's runs.
lockdir=${SANDBOX_UID_LOCK_DIR:-/run/codecollab-sandbox-uids}
mkdir -p -m 0700 "$lockdir"
exec 9>"$lockdir/$uid.lock"
flock -n 9 || { echo "bench/sandbox.sh: uid $uid is held by a worker's step on this host; try again, or set SANDBOX_UID_BASE" >&2; exit 1; }

dir=$(mktemp -d /tmp/cc-bench-sandbox.XXXXXX)
cleanup() { rm -rf "$dir"; }
trap cleanup EXIT
printf '#include <stdio.h>\nint main(void){puts("hello");return 0;}\n' >"$dir/hello.c"
gcc -O2 -o "$dir/hello" "$dir/hello.c"
chmod 0755 "$dir" "$dir/hello"

# The worker's bwrap options (see queue-worker/sandbox_bwrap.c), the program passed
# in through a descriptor like the worker does.
roots=()
for r in /bin /sbin /lib /lib32 /lib64 /libx32; do
  if [ -L "$r" ]; then roots+=(--symlink "$(readlink "$r")" "$r")
  elif [ -d "$r" ]; then roots+=(--ro-bind "$r" "$r"); fi
done
cat >"$dir/sandboxed" <<SH
#!/usr/bin/env bash
exec 4<"$dir/hello" 9>&-
exec env -i setpriv --reuid $uid --regid $gid --clear-groups bwrap \\
  --unshare-user --disable-userns --unshare-pid --unshare-net --unshare-ipc --unshare-uts \\
  --unshare-cgroup-try --uid 65534 --gid 65534 --hostname sandbox --die-with-parent --new-session \\
  --ro-bind /usr /usr ${roots[*]} --ro-bind-try /etc/alternatives /etc/alternatives \\
  --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache --proc /proc \\
  --ro-bind /dev/null /proc/1/mem --ro-bind /dev/null /proc/1/task/1/mem --dev /dev \\
  --size 67108864 --tmpfs /tmp --dir /tmp/work --perms 0555 --file 4 /tmp/work/main \\
  --remount-ro / --chdir /tmp/work --clearenv --setenv PATH /usr/bin:/bin -- ./main
SH
# The same inside a cgroup made for the run and removed after it.
cat >"$dir/step" <<SH
#!/usr/bin/env bash
set -e
name=bench-\$\$
# a group empties a moment after its last task is reaped
gone() { for _ in \$(seq 200); do rmdir "\$1" 2>/dev/null && return 0; sleep 0.001; done; rmdir "\$1"; }
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  g=/sys/fs/cgroup/codecollab/\$name; mkdir -p "\$g"
  echo 268435456 >"\$g/memory.max"; echo 64 >"\$g/pids.max"
  (echo 0 >"\$g/cgroup.procs"; exec "$dir/sandboxed")
  gone "\$g"
else
  m=/sys/fs/cgroup/memory/codecollab/\$name p=/sys/fs/cgroup/pids/codecollab/\$name
  mkdir -p "\$m" "\$p"
  echo 268435456 >"\$m/memory.limit_in_bytes"; echo 64 >"\$p/pids.max"
  (echo 0 >"\$m/cgroup.procs"; echo 0 >"\$p/cgroup.procs"; exec "$dir/sandboxed")
  gone "\$m"; gone "\$p"
fi
SH
chmod 0755 "$dir/sandboxed" "$dir/step"
[ "$("$dir/sandboxed")" = hello ] || { echo "bench/sandbox.sh: the sandboxed run failed" >&2; exit 1; }

if command -v hyperfine >/dev/null; then
  hyperfine -N --warmup 5 --runs "$runs" "$dir/hello" "$dir/sandboxed" "$dir/step"
  exit 0
fi

per_run() { # label, command: mean wall time of one run in ms, over $runs runs
  local t0 t1 i
  for i in 1 2 3; do "$2" >/dev/null; done
  t0=$(date +%s%N)
  for ((i = 0; i < runs; i++)); do "$2" >/dev/null; done
  t1=$(date +%s%N)
  awk -v l="$1" -v ns=$((t1 - t0)) -v n="$runs" 'BEGIN { printf "%-34s %8.2f ms per run (%d runs)\n", l, ns / n / 1e6, n }'
}
echo "sandbox overhead, C hello world (hyperfine not installed: timed loop)"
per_run "bare" "$dir/hello"
per_run "bubblewrap (worker's options)" "$dir/sandboxed"
per_run "full step (cgroup + bubblewrap)" "$dir/step"
