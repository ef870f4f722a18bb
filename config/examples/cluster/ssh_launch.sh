#!/usr/bin/env bash
# ssh_launch.sh: start one Lazarus run over several machines by ssh, without a scheduler.
#
# Usage: ssh_launch.sh HOST[=ADDR] [HOST[=ADDR]...]
#        ssh_launch.sh --hosts-file FILE        (one HOST[=ADDR] a line; # starts a comment)
#
# It starts the coordinator on this machine in the background, waits (at most
# WAIT_S seconds) for STATE_DIR/coordinator.addr, then starts one node agent per host with
# ssh. Then it waits for the coordinator and exits with its exit status: 0 when the run is
# done, 128 + signal when stopped, 1 when it failed. Run it again to resume from the newest
# committed checkpoint. Ctrl-C (or SIGTERM) is forwarded to the coordinator once, which
# stops the run after every rank has saved a checkpoint of its step.
#
# HOST is what ssh connects to. ADDR is that machine's cluster-network address, which its
# ranks bind Gloo to (default: HOST's first IPv4 address as this machine resolves it).
# Needs password-less ssh to every host, the same lazarus build at the same path on every
# host, and a shared filesystem at the same path everywhere.
#
# Edit (or set in the environment):
#   LAZARUS      the lazarus binary, the same path on every host
#   WORKDIR      a directory on the shared filesystem holding config/examples/small.toml and
#                the data shards the spec names; the spec's relative paths resolve against it
#   STATE_DIR    the run's state dir, on the shared filesystem
#   COORD_ADDR   this machine's address as the other hosts reach it
#   PORT         the coordinator's TCP port, open from every host
#   SLOTS        ranks per host (each uses parallel.threads_per_rank CPU cores)
#   DATA_SLOTS   data.slots: at least hosts x SLOTS, and the same on every resume
set -euo pipefail

LAZARUS=${LAZARUS:-$PWD/build/lazarus}
WORKDIR=${WORKDIR:-$PWD}
STATE_DIR=${STATE_DIR:-$WORKDIR/runs/small-ssh}
SPEC=${SPEC:-config/examples/small.toml}
PORT=${PORT:-7000}
SLOTS=${SLOTS:-1}
WAIT_S=${WAIT_S:-120}
COORD_ADDR=${COORD_ADDR:-$(hostname -i | cut -d' ' -f1)}

hosts=()
if [[ ${1:-} == --hosts-file ]]; then
  [[ $# -eq 2 ]] || { echo "usage: $0 --hosts-file FILE" >&2; exit 2; }
  while read -r line; do
    line=${line%%#*}
    line=${line//[[:space:]]/}
    [[ -n $line ]] && hosts+=("$line")
  done < "$2"
else
  hosts=("$@")
fi
if [[ ${#hosts[@]} -eq 0 ]]; then
  echo "usage: $0 HOST[=ADDR]... | --hosts-file FILE" >&2
  exit 2
fi

NODES=${#hosts[@]}
RANKS=$((NODES * SLOTS))
DATA_SLOTS=${DATA_SLOTS:-$((RANKS > 4 ? RANKS : 4))}   # small.toml has 4
LOG_DIR=$STATE_DIR/node-logs

cd "$WORKDIR"
mkdir -p "$STATE_DIR" "$LOG_DIR"
rm -f "$STATE_DIR/coordinator.addr"   # left behind by a coordinator that was killed

# Background jobs in their own process groups: Ctrl-C reaches only this script, which
# forwards one signal (a second one would end the coordinator at once).
set -m

"$LAZARUS" coordinator "$SPEC" \
  --set "parallel.ranks=$RANKS" --set "parallel.nodes=$NODES" --set "data.slots=$DATA_SLOTS" \
  --state-dir "$STATE_DIR" --listen "0.0.0.0:$PORT" &
COORD_PID=$!
NODE_PIDS=()

trap 'kill -INT "$COORD_PID" 2>/dev/null || true' INT
trap 'kill -TERM "$COORD_PID" 2>/dev/null || true' TERM

for ((i = 0; i < WAIT_S; i++)); do
  [[ -s "$STATE_DIR/coordinator.addr" ]] && break
  if ! kill -0 "$COORD_PID" 2>/dev/null; then   # it ended already (an error, or nothing to do)
    rc=0; wait "$COORD_PID" || rc=$?
    exit "$rc"
  fi
  sleep 1
done
if [[ ! -s "$STATE_DIR/coordinator.addr" ]]; then
  echo "the coordinator did not start listening within $WAIT_S s" >&2
  kill -TERM "$COORD_PID" 2>/dev/null || true
  exit 1
fi
# coordinator.addr reads 0.0.0.0:PORT (the --listen address), so the nodes join COORD_ADDR.
JOIN=$COORD_ADDR:$PORT
echo "coordinator listening; nodes join $JOIN"

# One node agent per host, in join order: the first host takes ranks 0..SLOTS-1.
for entry in "${hosts[@]}"; do
  host=${entry%%=*}
  if [[ $entry == *=* ]]; then
    addr=${entry#*=}
  else
    addr=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')
    addr=${addr:-$host}
  fi
  remote=$(printf '%q ' "$LAZARUS" node --join "$JOIN" --slots "$SLOTS" --name "$host" --host "$addr")
  ssh -n -o BatchMode=yes "$host" "exec $remote" > "$LOG_DIR/$host.log" 2>&1 &
  NODE_PIDS+=($!)
  echo "node agent on $host (ranks bind to $addr), log in $LOG_DIR/$host.log"
done

# Wait for the coordinator. A trapped signal interrupts `wait`, so wait again while it lives.
rc=0
while :; do
  rc=0; wait "$COORD_PID" || rc=$?
  kill -0 "$COORD_PID" 2>/dev/null || break
done

# The node agents exit once the coordinator has ended the run or is gone; give them 60 s.
for ((i = 0; i < 60; i++)); do
  alive=0
  for pid in "${NODE_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [[ $alive -eq 0 ]] && break
  sleep 1
done
for pid in "${NODE_PIDS[@]}"; do
  if kill -0 "$pid" 2>/dev/null; then
    echo "ssh session $pid still open after the run; closing it" >&2
    kill -TERM "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
done
echo "coordinator exited with $rc"
exit "$rc"
