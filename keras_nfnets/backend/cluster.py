"""Forming a ``MultiWorkerMirroredStrategy`` cluster without hanging silently.

TensorFlow's constructor blocks in C++ until every worker of ``TF_CONFIG`` answers, with no
time limit, holding Python's GIL: no Python code runs meanwhile, in any thread, and Python's
signal handlers never run (SIGINT and SIGTERM were ignored). So while it blocks, a watchdog
process (stdlib only, no TensorFlow) says which peers do not answer and since when, and after
a bounded time (``KERAS_NFNETS_CLUSTER_TIMEOUT`` seconds, ``nfnets train --cluster-timeout``;
default 300) says why it gives up and ends the process. TensorFlow also installs its own SIGTERM
handler there (its preemption notifier), which swallowed the signal. So the watchdog stops the
process (and says so) on a SIGINT or SIGTERM it receives itself (a signal to its process group).
A SIGTERM sent to the ``nfnets`` program alone (``kill PID``, ``docker stop``) reaches its light
parent process (:mod:`keras_nfnets.cli.supervise`), which ends the worker the same way until
:func:`report_formed` says the cluster formed. Afterwards Python's handlers are back.
"""

import dataclasses
import json
import os
import signal
import socket
import sys
import threading
import time

TIMEOUT_VARIABLE = "KERAS_NFNETS_CLUSTER_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
FIRST_REPORT, REPORT_EVERY = 10.0, 30.0  # seconds


def cluster_timeout(environ=None):
    """The seconds to wait for the cluster (``KERAS_NFNETS_CLUSTER_TIMEOUT``, default 300)."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"{TIMEOUT_VARIABLE}={raw!r} is not a positive number of seconds (e.g. 600).")
    return value


def peers(cluster, task_type, task_index):
    """``[(task type, index, "host:port")]`` of every other task in the cluster."""
    return [(job, index, address) for job, members in cluster.items() for index, address in enumerate(members)
            if (job, index) != (task_type, task_index)]


def why_unreachable(address, timeout=1.0):
    """Why ``host:port`` does not accept a connection now (``None`` when it does)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except socket.gaierror:
        return f"cannot resolve {host}"
    except (OSError, ValueError) as error:
        return getattr(error, "strerror", None) or str(error) or type(error).__name__


def describe_waiting(others):
    """One line naming the peers that do not answer (or saying that all of them do)."""
    silent = [(job, index, address, why) for job, index, address in others
              for why in [why_unreachable(address)] if why]
    if not silent:
        return (f"every peer ({', '.join(a for _, _, a in others)}) accepts connections; they have not all joined "
                "yet (each must run with the same TF_CONFIG cluster and its own task)")
    return "no answer from " + "; ".join(f"{job} {index} at {address} ({why})" for job, index, address, why in silent)


SIGNALS = (signal.SIGINT, signal.SIGTERM)


def form(create, others, timeout, report):
    """``create()`` (TensorFlow's blocking constructor) watched by :func:`watch` in a child
    process writing to ``report`` (a file with a descriptor); Python's SIGINT/SIGTERM handlers
    are put back afterwards (TensorFlow's C++ one replaced SIGTERM's)."""
    import subprocess

    in_main_thread = threading.current_thread() is threading.main_thread()
    handlers = {number: signal.getsignal(number) for number in SIGNALS} if in_main_thread else {}
    watchdog = subprocess.Popen(
        [sys.executable, "-c", "from keras_nfnets.backend.cluster import watch; watch()", str(os.getpid()),
         repr(timeout), json.dumps(others)],
        stdin=subprocess.DEVNULL, stdout=report, stderr=report, env=dict(os.environ, PYTHONPATH=_package_root()))
    try:
        return create()
    finally:
        watchdog.kill()
        watchdog.wait()
        for number, handler in handlers.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


FORMED_FD_VARIABLE = "KERAS_NFNETS_FORMED_FD"  # keras_nfnets.cli.supervise's pipe to the nfnets parent


def report_formed():
    """The cluster formed: one byte to the ``nfnets`` parent process (nothing where there is
    none), which from now on passes signals on instead of ending this process. Once."""
    descriptor = os.environ.pop(FORMED_FD_VARIABLE, None)
    if descriptor is None:
        return
    try:
        os.write(int(descriptor), b"1")
        os.close(int(descriptor))
    except (OSError, ValueError):  # the parent is gone (this process dies with it)
        pass


def _package_root():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # above keras_nfnets/
    return os.pathsep.join([root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def watch(argv=None):
    """The watchdog (``python -c``): ``PID TIMEOUT PEERS_JSON``. Reports after 10 s and every 30 s;
    at the timeout, or on a SIGINT/SIGTERM it receives, says why and kills the process; ends
    when the process goes on (it kills the watchdog) or ends."""

    pid, timeout, others = (sys.argv[1:] if argv is None else argv)[:3]
    pid, timeout, others = int(pid), float(timeout), [tuple(peer) for peer in json.loads(others)]
    received_here = []  # Ctrl-C, and a SIGTERM to the process group (launcher, container), reach this process too
    for number in SIGNALS:
        signal.signal(number, lambda signum, frame: received_here.append(signum))
    start = time.monotonic()
    next_report = FIRST_REPORT
    while True:
        time.sleep(0.2)
        if os.getppid() != pid:  # the process went on (it kills this one) or ended
            return
        elapsed = time.monotonic() - start
        if received_here:
            received = received_here[0]
            print(f"keras_nfnets: stopped by {signal.Signals(received).name} while waiting for the cluster to form "
                  f"({elapsed:.0f} s).", flush=True)
            os.kill(pid, signal.SIGKILL)  # blocked in C++ with the GIL, and TensorFlow's handler swallows SIGTERM
            return
        if elapsed >= timeout:
            print(f"keras_nfnets: error: the multi-worker cluster did not form in {timeout:.0f} s: "
                  f"{describe_waiting(others)}. Start every worker with the same TF_CONFIG cluster (each with its own "
                  f"task index), check the hosts and ports, or wait longer with --cluster-timeout SECONDS "
                  f"({TIMEOUT_VARIABLE}). Stopping.", flush=True)
            os.kill(pid, signal.SIGKILL)
            return
        if elapsed >= next_report:
            print(f"keras_nfnets: waiting for the cluster to form ({elapsed:.0f} s of {timeout:.0f} s): "
                  f"{describe_waiting(others)}", flush=True)
            next_report += REPORT_EVERY


TF_CONFIG_SHAPE = ('{"cluster": {"worker": ["host0:port", "host1:port", ...]}, "task": {"type": "worker", "index": I}}'
                   ' (optionally a "chief" list of one address, then "task" type "chief" or "worker")')


def cluster_from_tf_config(environ=None):
    """``(cluster dict, task type, task index)`` from ``TF_CONFIG``, checked; ``None`` when the
    variable is not set (``MultiWorkerMirroredStrategy`` then runs as a one-worker cluster)."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], int(task["index"])
        members = cluster[task_type]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is not a valid cluster description ({error!r}); it must look like "
                         f"{TF_CONFIG_SHAPE}.") from error
    if task_type not in ("chief", "worker") or not 0 <= index < len(members):
        raise ValueError(f"TF_CONFIG's task {task!r} is not one of its cluster's chief/worker entries "
                         f"{ {k: v for k, v in cluster.items()} }; it must look like {TF_CONFIG_SHAPE}.")
    return cluster, task_type, index


def tf_config(ports, index):
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of workers at ``127.0.0.1:ports``."""
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


KERAS_CLUSTER_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                           "KERAS_DISTRIBUTION_PROCESS_ID")


@dataclasses.dataclass(frozen=True)
class KerasCluster:
    """A multi-process JAX cluster as Keras describes it (``keras.distribution.initialize``):
    ``addresses`` (``host:port``; the first is the coordinator), ``num_processes``, this
    ``process_id``."""

    addresses: tuple
    num_processes: int
    process_id: int


def cluster_from_keras_env(environ=None):
    """The :class:`KerasCluster` of Keras' standard variables (``KERAS_DISTRIBUTION_JOB_ADDRESSES``,
    ``…_NUM_PROCESSES``, ``…_PROCESS_ID``), checked; ``None`` when none is set (one process)."""
    environ = os.environ if environ is None else environ
    values = {name: environ.get(name, "").strip() for name in KERAS_CLUSTER_VARIABLES}
    if not any(values.values()):
        return None
    shape = ("KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:port[,host1:port,…] (the first is the coordinator), "
             "KERAS_DISTRIBUTION_NUM_PROCESSES=N, KERAS_DISTRIBUTION_PROCESS_ID=0…N-1")
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"The JAX cluster variables are incomplete: {', '.join(missing)} not set. Set all three: {shape}.")
    addresses = tuple(a.strip() for a in values["KERAS_DISTRIBUTION_JOB_ADDRESSES"].split(",") if a.strip())
    try:
        count, index = int(values["KERAS_DISTRIBUTION_NUM_PROCESSES"]), int(values["KERAS_DISTRIBUTION_PROCESS_ID"])
    except ValueError as error:
        raise ValueError(f"The JAX cluster variables must be integers where they count ({error}); {shape}.") from None
    problems = []
    if count < 1:
        problems.append(f"KERAS_DISTRIBUTION_NUM_PROCESSES is {count}")
    if not 0 <= index < max(count, 1):
        problems.append(f"KERAS_DISTRIBUTION_PROCESS_ID {index} is not in 0…{count - 1}")
    if len(addresses) > 1 and len(addresses) != count:
        problems.append(f"{len(addresses)} addresses for {count} processes")
    bad = [a for a in addresses if a.rpartition(":")[0] == "" or not a.rpartition(":")[2].isdigit()]
    if bad or not addresses:
        problems.append(f"addresses {list(bad) or addresses} are not host:port")
    if problems:
        raise ValueError(f"The JAX cluster variables are inconsistent ({'; '.join(problems)}); {shape}.")
    return KerasCluster(addresses, count, index)
