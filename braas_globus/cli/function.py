"""`braas-globus function`: the render function's id, for a centre's ``allowed_functions``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .common import JsonOption, LazyService, run

if TYPE_CHECKING:
    from ..output import Output

RegisterOption = Annotated[bool, typer.Option(
    "--register", help="Register it now (needs `braas-globus login`) instead of at the "
                       "first submit.")]
PublicOption = Annotated[bool, typer.Option(
    "--public", help="With --register: anyone may run it (for a release's id).")]


def function(register: RegisterOption = False, public: PublicOption = False,
             as_json: JsonOption = False) -> None:
    """Print the id of the Globus Compute function every job sends (give it to a centre
    that lists `allowed_functions`)."""
    from ..dispatch.functions import known_function, register_function
    from ..errors import UsageError

    def command(out: Output, service: LazyService) -> None:
        home = service.home
        known = known_function(home)
        if public and not register:
            raise UsageError("--public goes with --register")
        if register and (known.function_id is None or public):
            from ..auth import translate_auth_errors
            from ..dispatch.globus import GlobusBackend

            with translate_auth_errors():
                known = register_function(GlobusBackend.make_compute_client(), home,
                                          public=public)
        shown = {"function_id": known.function_id, "origin": known.origin,
                 "source_sha256": known.digest}
        if known.function_id is None:
            out.data(shown, "the render function is not registered yet: the first submit "
                            "to a centre registers it (`braas-globus function --register` "
                            "does it now)")
            return
        out.data(shown, f"{known.function_id}  (from {known.origin}; compute_task.py "
                        f"sha256 {known.digest[:12]})")

    run(as_json, command)
