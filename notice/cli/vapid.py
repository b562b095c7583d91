"""``flask notice vapid-keys``: make a VAPID key pair and print the config lines."""

from __future__ import annotations

from pathlib import Path

import click

from . import notice_cli


@notice_cli.command("vapid-keys")
@click.option(
    "--pem",
    "pem_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the private key to this PEM file (mode 0600) and point the config at it.",
)
def vapid_keys(pem_path: Path | None) -> None:
    """Generate a VAPID key pair for Web Push and print the NOTICE_VAPID_* lines.

    Keep the private key secret (an environment variable or a file only the app can
    read); the public key is what browsers subscribe with.
    """
    try:
        from ..push.vapid import generate
    except ImportError as exc:  # cryptography comes with the webpush extra
        raise click.ClickException(f"{exc}; pip install 'notice[webpush]'") from None
    keys = generate()
    private = keys.private_raw()
    if pem_path is not None:
        if pem_path.exists():
            raise click.ClickException(f"{pem_path} exists; not overwriting a key")
        pem_path.touch(mode=0o600)
        pem_path.write_text(keys.private_pem())
        private = str(pem_path.resolve())
    click.echo(f'NOTICE_VAPID_PRIVATE_KEY = "{private}"')
    click.echo(f'NOTICE_VAPID_PUBLIC_KEY = "{keys.public_key}"')
    click.echo('NOTICE_VAPID_SUBJECT = "mailto:you@example.org"  # your contact address')
