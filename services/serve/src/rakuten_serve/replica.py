"""The models of one replica: a reload received by one worker is followed by all of them.

:class:`ReplicaModels` holds this worker's champion and challenger (:class:`Predictor` each) and,
when the server runs with a reload board (``RAKUTEN_RUN_DIR``, set by ``rakuten-serve run``),
keeps them in step with the other workers through :class:`~rakuten_serve.reload_board.
ReloadBoard`:

1. the worker that receives ``POST /admin/reload`` loads and warms up the model (the old one
   keeps serving; a failure ends here with the old model everywhere), swaps it in, then
   publishes the bundle directory it resolved to under the next generation number;
2. a follower thread in every worker checks the board every ``RAKUTEN_RELOAD_POLL_S``, loads the
   published bundle, warms it up, swaps it in and reports its pid and version (or its error,
   keeping its old model);
3. the receiving worker waits until every live worker reported the generation, or
   ``RAKUTEN_RELOAD_TIMEOUT_S``, and answers with each worker's version.

Without a board (tests building the app in-process, a single-process server) a reload swaps the
model of this process only, and the answer lists this process alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

from rakuten_core.errors import ModelUnavailableError
from rakuten_serve.model_source import resolve_bundle_dir
from rakuten_serve.predictor import LoadedModel, Predictor, load_model
from rakuten_serve.reload_board import (
    ROLES,
    Followed,
    ReloadBoard,
    Role,
    RoleStatus,
    WorkerModel,
)
from rakuten_serve.settings import ServeSettings
from rakuten_serve.telemetry import Telemetry

logger = logging.getLogger(__name__)


class ReplicaModels:
    """This worker's champion and challenger, kept in step with the replica's other workers."""

    def __init__(
        self,
        settings: ServeSettings,
        *,
        champion: Predictor,
        telemetry: Telemetry,
        board: ReloadBoard | None = None,
    ) -> None:
        self._settings = settings
        self._telemetry = telemetry
        self._board = board
        self.predictors: dict[Role, Predictor] = {
            "champion": champion,
            "challenger": Predictor(top_k=1),
        }
        self._applied: dict[Role, RoleStatus] = {role: RoleStatus(0, None) for role in ROLES}
        self._stamps: dict[Role, tuple[int, int, int] | None] = dict.fromkeys(ROLES)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def challenger(self) -> Predictor:
        return self.predictors["challenger"]

    def default_spec(self, role: Role) -> str:
        """What a reload without ``model`` loads: the configured path of the role."""
        if role == "champion":
            return self._settings.model_path
        return self._settings.challenger_model_path

    # ---- loading
    def _load(self, spec: str, *, path: str | None = None) -> tuple[LoadedModel, Path]:
        """Load and warm up ``spec`` (from ``path`` when that bundle directory still exists)."""
        if path and Path(path).is_dir():
            bundle_dir = Path(path)
        else:
            bundle_dir = resolve_bundle_dir(spec, cache_dir=self._settings.model_cache_dir)
        settings = self._settings
        model = load_model(
            str(bundle_dir.resolve()),
            cache_dir=settings.model_cache_dir,
            warm_up_batch=settings.batch_max_size if settings.batch_enabled else 1,
        )
        model.source = spec
        return model, bundle_dir.resolve()

    def load_startup(self, role: Role) -> LoadedModel | None:
        """Blocking: the model this worker starts with: the last one published for ``role``
        on the board (a restarted worker rejoins its replica), else the configured one.

        Returns ``None`` when nothing is configured for the role. Raises
        ``ModelUnavailableError`` when the model cannot be loaded.
        """
        desired = self._board.desired(role) if self._board else None
        spec = desired.spec if desired else self.default_spec(role)
        if not spec:
            return None
        model, _ = self._load(spec, path=desired.path if desired else None)
        with self._lock:
            self.predictors[role].reload_with(model)
            generation = desired.generation if desired else 0
            self._applied[role] = RoleStatus(generation, model.metadata.model_version)
        return model

    def _announce(self, role: Role, model: LoadedModel) -> None:
        meta = model.metadata
        if role == "champion":
            self._telemetry.model_loaded(
                name=meta.model_name,
                version=meta.model_version,
                run_id=meta.mlflow_run_id,
                source=model.source,
                prdtypecodes=[c.code for c in meta.categories],
            )
        else:
            self._telemetry.challenger_loaded(name=meta.model_name, version=meta.model_version)

    def _report(self) -> None:
        if self._board is not None:
            self._board.report(os.getpid(), {str(k): v for k, v in self._applied.items()})

    # ---- the receiving worker
    def reload_here(self, role: Role, spec: str) -> tuple[LoadedModel, int, str | None]:
        """Blocking: load ``spec`` here, swap it in, publish it to the other workers.

        Returns the model, the generation published (0 without a board) and the version it
        replaced. Raises ``ModelUnavailableError`` (nothing swapped, nothing published).
        """
        try:
            model, bundle_dir = self._load(spec)
        except ModelUnavailableError:
            self._telemetry.model_reloaded(success=False)
            raise
        predictor = self.predictors[role]
        with self._lock:
            previous = predictor.model.metadata.model_version if predictor.ready else None
            predictor.reload_with(model)
            generation = 0
            if self._board is not None:
                with self._board.locked():
                    desired = self._board.publish(
                        role, spec=spec, path=str(bundle_dir), model_version=_version(model)
                    )
                generation = desired.generation
            self._applied[role] = RoleStatus(generation, _version(model))
            self._report()
        self._telemetry.model_reloaded(success=True)
        self._announce(role, model)
        return model, generation, previous

    async def wait_followers(self, role: Role, generation: int) -> Followed:
        """Every live worker's model for ``role`` once all applied ``generation`` (or failed),
        or as they stand at ``RAKUTEN_RELOAD_TIMEOUT_S``."""
        if self._board is None:
            own = self._applied[role]
            return Followed(generation, [WorkerModel(os.getpid(), own.model_version, generation)])
        board = self._board
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.reload_timeout_s
        while True:
            followed = await asyncio.to_thread(board.followed, role, generation)
            waiting = [w for w in followed.lagging if w.error is None]
            if not waiting or loop.time() >= deadline:
                return followed
            await asyncio.sleep(0.1)

    # ---- every worker: the follower thread
    def start(self) -> None:
        """Blocking: load the challenger (if any), report this worker's models and start
        following the board. A challenger that cannot load leaves shadow scoring off; the
        champion serves either way."""
        champion = self.predictors["champion"]
        if not self.challenger.ready:
            try:
                model = self.load_startup("challenger")
            except ModelUnavailableError as exc:
                logger.error("challenger not loaded (%s); shadow scoring is off", exc)
            else:
                if model is not None:
                    self._announce("challenger", model)
        with self._lock:
            if champion.ready and self._applied["champion"].model_version is None:
                self._applied["champion"] = RoleStatus(0, _version(champion.model))  # injected
            self._report()
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="reload-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._board is not None:
            self._board.forget(os.getpid())

    def _follow(self) -> None:
        while not self._stop.wait(self._settings.reload_poll_s):
            for role in ROLES:
                try:
                    self._follow_role(role)
                except Exception:  # a bug must not stop the follower; the old model serves
                    logger.exception("following the %s reload failed", role)

    def _follow_role(self, role: Role) -> None:
        board = self._board
        if board is None:
            return
        stamp = board.desired_stamp(role)
        if stamp is None or stamp == self._stamps[role]:
            return
        self._stamps[role] = stamp
        desired = board.desired(role)
        if desired is None or desired.generation <= self._applied[role].generation:
            return
        logger.info("following reload %d of the %s: %s", desired.generation, role, desired.spec)
        try:
            model, _ = self._load(desired.spec, path=desired.path)
        except ModelUnavailableError as exc:
            self._telemetry.model_reloaded(success=False)
            logger.error("could not follow the %s reload (%s); the old model serves", role, exc)
            with self._lock:
                if desired.generation > self._applied[role].generation:
                    old = self._applied[role].model_version
                    self._applied[role] = RoleStatus(desired.generation, old, str(exc)[:500])
                    self._report()
            return
        with self._lock:
            if desired.generation <= self._applied[role].generation:
                return  # a newer reload reached this worker meanwhile
            self.predictors[role].reload_with(model)
            self._applied[role] = RoleStatus(desired.generation, _version(model))
            self._report()
        self._telemetry.model_reloaded(success=True)
        self._announce(role, model)


def _version(model: LoadedModel) -> str:
    return model.metadata.model_version
