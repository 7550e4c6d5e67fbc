"""Benchmarks of the webhook service against the emulated GitHub and Google Cloud.

Run from the repository root: `python -m benchmarks [--latency-ms 50] [--quick] [--json FILE]`.
The method is described in `benchmarks/README.md`; in short:

- the fakes (`jitaccess_sandbox.emulator.Emulator`) run in the benchmark's process;
- the service runs as `webhook.main:app`, configured from the environment, in a process of its
  own (`benchmarks.service_process`), so that its CPU time, memory and imports are its own;
- each delivery is a signed POST, exactly as GitHub sends it.

These are measurements, not tests: only `tests/unit/test_benchmarks_smoke.py` asserts anything,
and only exact call counts.
"""
