"""What went wrong talking to an ONVIF device, in one word and a short line without secrets:
shared by camera description (`onvif`), clock reading (`onvif_clock`) and recorder search
(`onvif_archive`)."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["unauthorized", "unreachable", "protocol"]


def classify(exc: BaseException) -> tuple[ErrorKind, str]:
    """Map the client's exception chain to one kind and a short message without secrets."""
    import requests
    import zeep.exceptions

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for error in chain:
        if isinstance(error, requests.exceptions.Timeout):
            return "unreachable", "timed out"
        if isinstance(error, requests.exceptions.ConnectionError):
            return "unreachable", _connection_reason(error)
        if isinstance(error, zeep.exceptions.TransportError) and error.status_code == 401:
            return "unauthorized", "wrong username or password (HTTP 401)"
        if isinstance(error, zeep.exceptions.Fault):
            text = f"{error.message} {error.code} {error.subcodes}".lower()
            if "notauthorized" in text or "not authorized" in text or "unauthori" in text:
                return "unauthorized", f"wrong username or password ({error.message})"
            return "protocol", f"SOAP fault: {error.message}"
    return "protocol", f"{type(chain[-1]).__name__}: {chain[-1]}"[:300]


def _connection_reason(error: BaseException) -> str:
    text = str(error)
    for reason in ("Connection refused", "No route to host", "Name or service not known"):
        if reason in text:
            return reason.lower()
    return "cannot connect"
