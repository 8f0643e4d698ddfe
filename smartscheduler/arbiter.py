"""gunicorn, configured in code, and its arbiter, which also keeps the followers.

`Server` is gunicorn's application: its options come from `smartscheduler.server.serve`,
and `load`, run in each worker after the fork, builds the app through the
composition root (`smartscheduler.bootstrap`), with the server's shared stream
slots in place of the app's own. `ServerArbiter` is gunicorn's arbiter, which
also starts, reaps, restarts and stops the server's followers process
(`smartscheduler.followers_process.Followers`) beside the HTTP workers.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from application.settings import Settings

if TYPE_CHECKING:
    from smartscheduler.followers_process import Followers
    from smartscheduler.slots import SharedSlots


class Server(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured in code; `load` runs after the fork, in each worker.

    `followers`: the followers process the arbiter keeps (SQLite); `stream_slots`:
    the stream slots the workers share (SQLite: as many as one process had)."""

    def __init__(self, settings: Settings, options: dict[str, Any], *,
                 followers: Followers | None = None,
                 stream_slots: SharedSlots | None = None) -> None:
        self.settings = settings
        self.options = options
        self.followers = followers
        self.stream_slots = stream_slots
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from smartscheduler.bootstrap import create_app

        app = create_app(self.settings)
        if self.stream_slots is not None:
            # In place of the app's own semaphore (web.app): the server's limit.
            app.extensions["smartscheduler.streams"] = self.stream_slots
        return app

    def run(self) -> None:
        try:
            ServerArbiter(self).run()
        except RuntimeError as error:  # as gunicorn's BaseApplication.run
            print(f"\nError: {error}\n", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)


class ServerArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter, which also keeps the server's followers process running.

    The followers process is a child like the workers, reaped the way gunicorn
    reaps its dirty arbiter: by its own pid first, since gunicorn's waitpid(-1)
    takes any child (when it takes this one first, the pid is found gone).
    """

    def __init__(self, app: Server) -> None:
        self.followers = app.followers
        super().__init__(app)

    def start(self) -> None:
        super().start()
        if self.followers is not None:
            self.followers.spawn(self)

    def handle_chld(self) -> None:
        if self.followers is not None:
            self.followers.reap(self)
        super().handle_chld()

    handle_cld = handle_chld

    def reap_workers(self) -> None:
        if self.followers is not None:
            self.followers.reap(self)
        super().reap_workers()
        if self.followers is not None:
            self.followers.reap(self)

    def manage_workers(self) -> None:
        super().manage_workers()
        if self.followers is not None:
            self.followers.maintain(self)

    def stop(self, graceful: bool = True) -> None:
        """The workers and the followers stop side by side, within the graceful timeout."""
        if self.followers is not None:
            self.followers.stop(self)
        super().stop(graceful)
        if self.followers is not None:
            self.followers.wait(self)
