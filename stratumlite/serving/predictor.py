"""Running a fitted learner's predict, fast: one persistent runtime session per model.

``Learner.predict(env)`` opens a new :class:`~stratumlite.runtime.session.Session`
per call: it builds an executor, fingerprints the input frame to key the
binding, copies the fitted state into the session, runs the plan, and tears
it all down. For a server answering many small batches that fixed cost
matters, so :class:`Predictor` replicates ``Learner._run`` in predict mode
with the parts that do not depend on the batch done once:

* one ``Session`` per served model version (sequential executor by default: a
  predict plan is a chain, and the batch worker thread is the one thread
  driving it), its ``states`` filled once with the learner's fitted state
  under the learner's ``fit_key_`` (exactly what ``Learner._run`` does per
  call);
* each batch is bound with a unique key instead of a content fingerprint: no
  batch ever shares a task with another, and hashing the frame is skipped
  (nothing is cached across batches: the prediction cache works on rows, and
  the session's value store is emptied after each run);
* no lineage hook and no persistent cache (serving records nothing).

The result is what ``learner.predict(env)`` returns: the same plan, the same
fitted private copies, the same operator implementations, the same modes.
A ``Predictor`` is used by one thread at a time (its lock makes sure).

>>> import skrub, stratumlite, pandas as pd
>>> from sklearn.linear_model import Ridge
>>> df = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 2.0, 4.0]})
>>> X = skrub.var("X").skb.mark_as_X()
>>> pred = X.skb.apply(Ridge(alpha=1e-9), y=skrub.var("y").skb.mark_as_y())
>>> learner = stratumlite.make_learner(pred).fit({"X": df[["x"]], "y": df["y"]})
>>> Predictor(learner).run("predict", {"X": df[["x"]]}).round(3).tolist()
[0.0, 2.0, 4.0]
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Any

from .. import frontend
from ..config import Config
from ..errors import NotFittedError
from ..runtime.session import Session
from ..runtime.tasks import Binding

__all__ = ["Predictor"]

_batch_ids = itertools.count()


class Predictor:
    """Persistent-session predict path of a fitted :class:`~stratumlite.Learner`.

    Parameters
    ----------
    learner : Learner
        A fitted learner (e.g. loaded from the model registry).
    config : Config or None
        Runtime settings; the executor is replaced by ``executor``, lineage
        and the persistent cache are switched off.
    executor : {"sequential", "threads"}
        How the session runs the plan's nodes.
    """

    def __init__(self, learner, config: Config | None = None, executor: str = "sequential"):
        if not learner.__sklearn_is_fitted__():
            raise NotFittedError("cannot serve a learner that is not fitted")
        self.learner = learner
        base = config or learner.config or Config()
        self.config = base.replace(executor=executor, lineage=False, cache=False,
                                   memory_budget=None, verbose=0)
        self.session = Session(self.config, kind="predict", hooks=[])
        self.fit_binding = Binding({}, key=learner.fit_key_, label="learner fit")
        for key, impl in learner.state_.items():
            self.session.states[(self.fit_binding.key, key)] = impl
        self._fitted_states = set(self.session.states)
        self._lock = threading.Lock()
        self._prefix = f"serve-{os.getpid()}-{id(self):x}"

    @property
    def methods(self) -> list[str]:
        return [m for m in self.learner.modes
                if m not in ("preview", "fit", "fit_transform", "score")]

    def run(self, method: str, environment: dict) -> Any:
        """``learner.<method>(environment)`` through the persistent session."""
        if method not in self.methods:
            raise AttributeError(
                f"This learner has no method {method!r}: its final step supports "
                f"{', '.join(self.methods)}.")
        frontend.check_environment(environment)
        session = self.session
        with self._lock:
            binding = session.bind(dict(environment), label="serving batch",
                                   key=f"{self._prefix}-{next(_batch_ids)}")
            task = session.request(self.learner.plan.output, method, binding,
                                   self.fit_binding)
            try:
                (result,) = session.run([task])
            finally:
                # forget everything this batch left behind: values, records, and
                # any state keyed by the batch's binding
                session.values.clear()
                session.records.clear()
                for key in [k for k in session.states if k not in self._fitted_states]:
                    del session.states[key]
            return result

    def close(self) -> None:
        self.session.close()
