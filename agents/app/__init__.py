"""agents.app — the application layer: what the CLIs run, above the models.

``train.py``, ``evaluate.py`` and ``serve.py`` make one call here per step (parse → resolve → build →
learn/evaluate/serve → save); nothing below this package imports it (``tests/test_import_graph.py``).

| module | holds |
| --- | --- |
| ``config`` | hyper-parameters from ``configs/*.yml`` (RL Zoo style), the algorithm registry, envs and models |
| ``cli`` | the one-line argument parser and the ``--data-option`` helpers shared by the CLIs |
| ``training`` | the steps of ``train.py``: ``resolve_run``, ``build_training``, then its ``learn`` and ``save`` |
| ``evaluating`` | the steps of ``evaluate.py``: resolve, build, run and save an evaluation |
| ``evaluation`` | the evaluation protocol: eval envs, annualization, walk-forward episodes, statistics, outputs |
| ``metrics`` | performance and risk metrics with their formulas |
| ``checkpoint`` | training checkpoints a crash cannot lose, read without pickle (model, buffer, callbacks, RNG states) |
| ``callbacks`` | the ``janus/*`` TensorBoard metrics and the atomic checkpoint callback |
| ``opponents`` | scripted strategies and the one env whose scripted opponents act inside the market |
| ``tournament`` | multi-agent tournaments: the roster, train the learners, play the matchups, payoffs |
| ``rllib`` | the Ray RLlib backend: env registration, the PPO config, the training loop |
| ``service`` | the decision service of ``serve.py``: a run over HTTP behind its glass box (its own package) |

The package root imports nothing, so ``import agents.app.cli`` stays as light as ``agents`` itself.
"""
