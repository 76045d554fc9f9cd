"""``nfnets launch``: a multi-worker cluster of processes on this machine, for trying
``--strategy multi_worker`` (``MultiWorkerMirroredStrategy``) and for single-host multi-process runs.

It starts N copies of a command on 127.0.0.1, each with its own free port and a ``TF_CONFIG``
naming all of them (on the JAX backend: Keras' ``KERAS_DISTRIBUTION_*`` variables, for
``keras.distribution``), streams the chief's output (the other workers' goes to log files), forwards
Ctrl-C / SIGTERM to every worker, and, with ``restarts``, restarts the whole cluster when a
worker dies; training then resumes from its last backup. A real cluster sets ``TF_CONFIG`` on
each host itself and runs the same ``nfnets train --strategy multi_worker`` there.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

# Sub-commands of ``nfnets`` that may be launched as a cluster, run as ``python -m keras_nfnets.cli``.
NFNETS_COMMANDS = ("train",)
GRACE_SECONDS = 10.0


def free_ports(count):
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together while choosing)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_command(command):
    """The argv a worker runs: an ``nfnets`` sub-command (``train …``, made multi-worker) through
    this Python, anything else as given."""
    if not command:
        raise ValueError("Nothing to launch: give a command after --, e.g. nfnets launch --workers 2 -- train")
    if command[0] not in NFNETS_COMMANDS:
        return list(command)
    strategy = [a for i, a in enumerate(command) if a.startswith("--strategy")]
    values = [a.split("=", 1)[1] if "=" in a else (command[command.index(a) + 1] if command.index(a) + 1 < len(command)
                                                    else "") for a in strategy]
    if any(v != "multi_worker" for v in values):
        raise ValueError(f"nfnets launch runs `{command[0]}` with --strategy multi_worker; received --strategy "
                         f"{values[0]}. Leave --strategy out or set it to multi_worker.")
    extra = [] if strategy else ["--strategy", "multi_worker"]
    return [sys.executable, "-m", "keras_nfnets.cli", *command, *extra]


def _die_with_parent():
    """In the child: receive SIGKILL when the launcher dies, so no worker outlives it (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _describe(code):
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


class Cluster:
    """N worker processes of one command on 127.0.0.1; worker 0 is the chief."""

    def __init__(self, command, workers, threads_per_worker=None, log_dir=None, stream=None):
        self.command = worker_command(command)
        self.runs_nfnets = command[0] in NFNETS_COMMANDS
        self.workers = int(workers)
        self.threads_per_worker = threads_per_worker
        self.log_dir = log_dir
        self.stream = stream or sys.stderr
        self.processes = []
        self._logs = []

    def _environment(self, ports, index):
        from keras_nfnets import _startup

        from keras_nfnets import backend

        # TensorFlow: TF_CONFIG; JAX: Keras' cluster variables (the backend the user's shell selects)
        env = dict(_startup.user_environment(), **backend.for_backend(backend.selected()).cluster_environment(ports, index))
        if self.threads_per_worker:
            threads = str(int(self.threads_per_worker))
            env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads, OMP_NUM_THREADS=threads)
        return env

    def start(self):
        ports = free_ports(self.workers)
        os.makedirs(self.log_dir, exist_ok=True)
        self.processes, self._logs = [], []
        for index in range(self.workers):
            if index == 0:
                output = None  # the chief's output goes to the launcher's
            else:
                output = open(os.path.join(self.log_dir, f"worker-{index}.log"), "ab")
                self._logs.append(output)
            self.processes.append(subprocess.Popen(
                self.command, env=self._environment(ports, index), stdout=output, stderr=output,
                start_new_session=True, preexec_fn=_die_with_parent))
        pids = ", ".join(f"worker {i} pid {p.pid}" for i, p in enumerate(self.processes))
        workers = f"{self.workers} worker{'s' if self.workers > 1 else ''}"
        print(f"nfnets launch: {workers} on 127.0.0.1 ports {', '.join(map(str, ports))} ({pids}; worker 0 is the "
              f"chief; the others log to {self.log_dir})", file=self.stream, flush=True)

    def poll(self):
        """``None`` while every worker runs or some still run after others succeeded; else
        ``(index, returncode)`` of the first failed worker, or ``(None, 0)`` when all succeeded."""
        codes = [p.poll() for p in self.processes]
        for index, code in enumerate(codes):
            if code not in (None, 0):
                return index, code
        return (None, 0) if all(code == 0 for code in codes) else None

    def send(self, signum):
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signum)
                except ProcessLookupError:
                    pass

    def stop(self, signum=signal.SIGTERM, grace=GRACE_SECONDS):
        """Send ``signum`` to every running worker, wait up to ``grace`` seconds, then SIGKILL."""
        self.send(signum)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in self.processes):
            time.sleep(0.1)
        self.send(signal.SIGKILL)
        for process in self.processes:
            process.wait()
        for log in self._logs:
            log.close()

    def log_tail(self, index, lines=15):
        if index == 0:
            return ""
        with open(os.path.join(self.log_dir, f"worker-{index}.log"), errors="replace") as f:
            return "".join(f.readlines()[-lines:])


def launch(command, workers=2, restarts=0, threads_per_worker=None, log_dir=None, grace=GRACE_SECONDS, stream=None):
    """Run ``command`` (argv; ``["train", …]`` for ``nfnets train``) as ``workers`` workers of a
    cluster on 127.0.0.1; restart the whole cluster up to ``restarts`` times when a worker fails.
    Returns the exit status: 0 when every worker succeeded, else the failed worker's (1 for a
    signal), 130 / 143 after Ctrl-C / SIGTERM."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be a positive integer; received {workers!r}.")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
        raise ValueError(f"`restarts` must be a non-negative integer; received {restarts!r}.")
    stream = stream or sys.stderr
    cluster = Cluster(command, workers, threads_per_worker, log_dir or tempfile.mkdtemp(prefix="nfnets-launch-"),
                      stream)
    received = []

    def on_signal(signum, frame):
        received.append(signum)

    handlers = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            handlers[signum] = signal.signal(signum, on_signal)
        except ValueError:  # not the main thread
            pass
    try:
        attempt = 0
        while True:
            cluster.start()
            state = None
            while state is None and not received:
                time.sleep(0.2)
                state = cluster.poll()
            if received:
                print(f"nfnets launch: {signal.Signals(received[0]).name} received; stopping the workers.",
                      file=stream, flush=True)
                cluster.stop(received[0], grace)
                return 128 + received[0]
            index, code = state
            if index is None:
                cluster.stop(grace=0)
                return 0
            print(f"nfnets launch: worker {index} failed ({_describe(code)}); stopping the others.", file=stream,
                  flush=True)
            tail = cluster.log_tail(index)
            if tail:
                print(f"--- last lines of worker {index}'s log ---\n{tail}---", file=stream, flush=True)
            cluster.stop(grace=grace)
            if attempt >= restarts:
                if restarts:
                    print(f"nfnets launch: giving up after {restarts} restart(s).", file=stream, flush=True)
                return code if code > 0 else 1
            attempt += 1
            print(f"nfnets launch: restarting the cluster ({attempt} of {restarts}); training resumes from its last "
                  "backup.", file=stream, flush=True)
            if cluster.runs_nfnets and "--restart" in cluster.command:  # start over once, not at every restart
                cluster.command = [a for a in cluster.command if a != "--restart"]
    finally:
        if any(p.poll() is None for p in cluster.processes):
            cluster.stop(signal.SIGKILL, 0)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def add_arguments(parser):
    """The launcher's options (shared by ``nfnets launch`` and ``python -m keras_nfnets.cli.launch``)."""
    parser.add_argument("--workers", type=int, required=True, help="number of worker processes (worker 0 is the chief)")
    parser.add_argument("--restart-on-failure", type=int, default=0, metavar="K",
                        help="restart the whole cluster up to K times when a worker fails (default 0)")
    parser.add_argument("--threads-per-worker", type=int, default=None,
                        help="CPU threads for each worker's TensorFlow (default: TensorFlow's choice)")
    parser.add_argument("--log-dir", default=None, help="where the non-chief workers' logs go (default: a temp dir)")
    parser.add_argument("worker_command", nargs=argparse.REMAINDER, metavar="command",
                        help="after --: an nfnets sub-command (train ...) or any command, run on every worker")


def run_from_arguments(args):
    command = args.worker_command[1:] if args.worker_command[:1] == ["--"] else args.worker_command
    for name in ("workers", "threads_per_worker"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer; received {value}.")
    return launch(command, args.workers, args.restart_on_failure, args.threads_per_worker, args.log_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m keras_nfnets.cli.launch", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_arguments(args)
    except ValueError as error:
        print(f"nfnets launch: error: {error}", file=sys.stderr)
        return 2



if __name__ == "__main__":  # python -m keras_nfnets.cli.launch --workers N -- COMMAND
    sys.exit(main())
