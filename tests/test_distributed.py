"""`restreact.distributed.initialize`: which settings start JAX's multi-process runtime, and clear errors for bad
ones (jax.distributed.initialize is replaced by a recorder; nothing connects)."""

import jax
import pytest

from restreact import distributed

GOOD = {"RESTREACT_COORDINATOR": "10.0.0.1:1234", "RESTREACT_NUM_PROCESSES": "4", "RESTREACT_PROCESS_ID": "3"}


@pytest.fixture
def calls(monkeypatch):
  """Records jax.distributed.initialize calls and config updates instead of making them."""
  record = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: record.append(("initialize", a, k)))
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.config, "update", lambda name, value: record.append(("update", name, value)))
  return record


def _initialize_calls(calls):
  return [c[1:] for c in calls if c[0] == "initialize"]


def test_arguments_start_the_runtime(calls):
  assert distributed.initialize("127.0.0.1:5000", 2, 1, environ={}) is True
  assert _initialize_calls(calls) == [(("127.0.0.1:5000",), {"num_processes": 2, "process_id": 1})]


def test_environment_variables_start_the_runtime(calls):
  assert distributed.initialize(environ=GOOD) is True
  assert _initialize_calls(calls) == [(("10.0.0.1:1234",), {"num_processes": 4, "process_id": 3})]


def test_arguments_override_the_environment(calls):
  assert distributed.initialize(process_id=0, environ=GOOD) is True
  assert _initialize_calls(calls) == [(("10.0.0.1:1234",), {"num_processes": 4, "process_id": 0})]


def test_ipv6_and_host_names_are_accepted(calls):
  assert distributed.initialize("[::1]:8476", 2, 0, environ={})
  assert distributed.initialize("node-017.cluster:8476", 2, 0, environ={})
  assert len(_initialize_calls(calls)) == 2


def test_gloo_is_chosen_only_when_no_cpu_collectives_are(calls, monkeypatch):
  monkeypatch.setattr(distributed, "_cpu_collectives", lambda: "none")  # as older JAX versions default
  distributed.initialize("127.0.0.1:5000", 2, 0, environ={})
  assert ("update", "jax_cpu_collectives_implementation", "gloo") in calls
  assert calls.index(("update", "jax_cpu_collectives_implementation", "gloo")) < \
      next(i for i, c in enumerate(calls) if c[0] == "initialize")  # before the backend starts
  calls.clear()
  monkeypatch.setattr(distributed, "_cpu_collectives", lambda: "mpi")
  distributed.initialize("127.0.0.1:5000", 2, 0, environ={})
  assert [c for c in calls if c[0] == "update"] == []  # a user's choice stays


def test_nothing_given_is_one_process(calls):
  assert distributed.initialize(environ={}) is False
  assert distributed.initialize(environ={"TPU_WORKER_HOSTNAMES": "localhost"}) is False  # a single-host TPU VM
  assert distributed.initialize(environ={"RESTREACT_COORDINATOR": "  "}) is False  # blank counts as unset
  assert calls == []


@pytest.mark.parametrize("environ", [{"TPU_WORKER_HOSTNAMES": "t1k-w-0,t1k-w-1"},
                                     {"MEGASCALE_COORDINATOR_ADDRESS": "10.0.0.2:8080"}])
def test_tpu_pod_lets_jax_find_the_workers(calls, environ):
  assert distributed.initialize(environ=environ) is True
  assert _initialize_calls(calls) == [((), {})]


def test_already_initialized_is_not_started_twice(calls, monkeypatch):
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: True)
  assert distributed.initialize("127.0.0.1:5000", 2, 0, environ={}) is True
  assert distributed.initialize(environ={"TPU_WORKER_HOSTNAMES": "a,b"}) is True
  assert _initialize_calls(calls) == []


@pytest.mark.parametrize("args, environ, message", [
    (("127.0.0.1:5000", None, None), {}, r"missing num_processes \(flag --num_processes or RESTREACT_NUM_PROCESSES"
                                         r"\), process_id \(flag --process_id or RESTREACT_PROCESS_ID\)"),
    ((None, None, None), {"RESTREACT_PROCESS_ID": "0"}, r"missing coordinator \(flag --coordinator or "
                                                         r"RESTREACT_COORDINATOR\), num_processes"),
    ((None, 2, 0), {}, r"missing coordinator"),
    (("127.0.0.1:5000", 2, 2), {}, r"process_id=2 \(RESTREACT_PROCESS_ID\) is out of range \[0, 2\)"),
    (("127.0.0.1:5000", 2, -1), {}, r"process_id=-1 .* out of range"),
    (("127.0.0.1:5000", 0, 0), {}, r"num_processes=0 \(RESTREACT_NUM_PROCESSES\) must be at least 1"),
    ((None, None, None), {**GOOD, "RESTREACT_NUM_PROCESSES": "four"},
     r"num_processes \(RESTREACT_NUM_PROCESSES\) must be an integer, got 'four'"),
    (("127.0.0.1:5000", True, 0), {}, r"num_processes .* must be an integer, got True"),
    (("127.0.0.1", 2, 0), {}, r"coordinator='127.0.0.1' \(RESTREACT_COORDINATOR\): it is not host:port"),
    ((":5000", 2, 0), {}, r"coordinator=':5000'.*not host:port"),
    (("127.0.0.1:http", 2, 0), {}, r"port 'http' is not a number in \[1, 65535\]"),
    (("127.0.0.1:70000", 2, 0), {}, r"port '70000' is not a number"),
    (("127.0.0.1:0", 2, 0), {}, r"port '0' is not a number"),
    (("::1:5000", 2, 0), {}, r"an IPv6 host must be in brackets"),
    (("host name:5000", 2, 0), {}, r"whitespace"),
])
def test_bad_settings_are_named(calls, args, environ, message):
  with pytest.raises(ValueError, match=message):
    distributed.initialize(*args, environ=environ)
  assert calls == []
