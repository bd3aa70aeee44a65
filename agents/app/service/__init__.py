"""agents.app.service — the decision service: a trained run served over HTTP behind its glass box.

``python serve.py RUN --store DIR`` makes one call here per step (:mod:`.serving`); the FastAPI app is built by
:func:`.app.create_app` on a :class:`.service.DecisionService`. One concept per module:

| module | holds |
| --- | --- |
| ``store`` | the embedded SQLite store of the ``--store`` folder: keys, accounts, halts (they survive restarts) |
| ``keys`` | API keys: created once, stored as salted HMAC-SHA256 digests, scopes ``decide`` and ``admin`` |
| ``accounts`` | a client's account: position, cash, cost basis, peak, the open order and the fills against it |
| ``observation`` | the observation ``Janus-LOB-v0`` shows for a desk's raw market state (its own market code) |
| ``engine`` | the policy: ONNX Runtime on the run's exported graph (default) or torch, gated as in evaluation |
| ``guard`` | one account's glass box: the LTN shield core, the circuit breakers, sizing and the audit trail |
| ``metrics`` | Prometheus text exposition: counters, gauges, the decision-latency histogram |
| ``ratelimit`` | a token bucket per API key (429 beyond it) |
| ``schemas`` | the request bodies, validated with pydantic (wrong shapes, NaN, oversized → 4xx naming the field) |
| ``service`` | :class:`~.service.DecisionService`: decisions, fills, halts and resumes on the accounts |
| ``syncer`` | the disk work off the event loop: audit trails ``fsync``ed and the store checkpointed, once a second |
| ``app`` | the FastAPI app: routes (the two hot ones answered in front of FastAPI's router), authentication, body-size limit, error format |
| ``serving`` | the steps of ``serve.py``: make a key, resolve and build the service, run uvicorn |
| ``venue`` | paper trading's venue state: the env's own numbers, taken only when they reconcile with the account |
| ``paper`` | ``serve.py paper``: drives the service over HTTP from the run's simulated market |
| ``experience`` | the transitions of served decisions and fills, recorded per account for sleep jobs |
| ``versions`` | model versions served, their parents, and the sleep jobs (SQLite) |
| ``sleep`` | :class:`~.sleep.SleepManager`: queues sleep jobs, runs one worker at a time, swaps validated versions |
| ``sleep_worker`` | one sleep job: load, replay the recorded experience (SWR), write and validate a new version |
| ``ray_jobs`` | ``--ray-address``: a sleep job as a Ray task, shipped by value, its outcome landed by the server |

The package root imports nothing, so ``import agents.app.service.keys`` stays light.
"""
