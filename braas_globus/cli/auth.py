"""`braas-globus login`, `logout` and `whoami`: the program's one Globus login.

``cli/__init__`` registers these functions with ``app.command()(login)`` and so on. Exit
codes as everywhere: 0 success, 1 a failed run (not logged in, login expired, Globus
unreachable), 2 bad input. None of them opens the job store.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import RunError
from .common import JsonOption, LazyService, run

if TYPE_CHECKING:
    from ..output import Output

NoBrowserOption = Annotated[bool, typer.Option(
    "--no-browser", help="Open the login address anywhere and paste the code here, instead of "
                         "opening a browser on this machine.")]
ForceOption = Annotated[bool, typer.Option(
    "--force", help="Log in again even if the saved login still works.")]


def _auth() -> ModuleType:
    try:
        from .. import auth
    except ImportError as err:
        raise RunError(f"Globus support is not installed ({err.name} is missing): "
                       "pip install braas-globus") from None
    return auth


def _who(identity: dict[str, Any]) -> str:
    text = identity.get("username") or identity.get("id") or "an unknown identity"
    return text + (f" ({identity['name']})" if identity.get("name") else "")


def _lacks(out: Output, result: dict[str, Any]) -> None:
    if result["missing"]:
        out.note(f"the login does not cover {', '.join(result['missing'])} yet: "
                 "run `braas-globus login --force`")


def login(no_browser: NoBrowserOption = False, force: ForceOption = False,
          as_json: JsonOption = False) -> None:
    """Log in to Globus once, for Transfer, Compute and the centres' collections."""

    def command(out: Output, service: LazyService) -> None:
        auth = _auth()
        try:
            from ..presets import load_cluster_presets

            mapped = [str(p.collection_id) for p in
                      load_cluster_presets(service.home).values() if p.mapped_collection]
            result = auth.login(no_browser=no_browser, force=force, notify=out.note,
                                collection_ids=mapped)
        except KeyboardInterrupt:
            out.error("login interrupted; nothing was changed")
            raise typer.Exit(130) from None
        already = "already " if result["logged_in"] == "already" else ""
        out.data(result, f"{already}logged in to Globus as {_who(result['identity'])}")
        _lacks(out, result)
        if result.get("requirements_left"):
            out.note(f"Globus asked for {result['requirements_left']} more thing(s) that need "
                     "a login of their own (another identity domain): run `braas-globus "
                     "login` again")

    run(as_json, command)


def logout(as_json: JsonOption = False) -> None:
    """Revoke your Globus tokens at Globus and delete them (and what Globus asked of the
    login) from this machine."""

    def command(out: Output, service: LazyService) -> None:
        result = _auth().logout()
        if result["file_was_exposed"]:
            out.note(f"{result['token_file']} could be read by other users; its tokens are "
                     "revoked now")
        if not result["was_logged_in"]:
            out.data(result, "not logged in to Globus; nothing to do")
            return
        out.data(result, f"logged out of Globus: {result['tokens_revoked']} tokens revoked, "
                         "and deleted from this machine")
        if result["not_revoked"]:
            out.error(f"could not revoke the tokens for {', '.join(result['not_revoked'])} at "
                      "Globus (they are deleted here): revoke them at "
                      "https://app.globus.org/account/consents")
            raise typer.Exit(1)

    run(as_json, command)


def whoami(as_json: JsonOption = False) -> None:
    """Who is logged in to Globus, and which services the login covers (never the tokens)."""

    def command(out: Output, service: LazyService) -> None:
        result = _auth().whoami()
        identity = result["identity"]
        lines = [_who(identity) + (f" <{identity['email']}>" if identity.get("email") else ""),
                 f"identity    {identity['id']}"]
        lines += [f"service     {server}  (access until {info['access_expires']}"
                  f"{', refreshable' if info['refreshable'] else ''})"
                  for server, info in result["resource_servers"].items()]
        lines.append(f"token file  {result['token_file']}")
        out.data(result, "\n".join(lines))
        _lacks(out, result)

    run(as_json, command)
