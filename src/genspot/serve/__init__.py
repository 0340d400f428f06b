"""`genspot serve`: the Detector behind a REST API and a web page."""

from genspot.serve.app import Limits, create_app

__all__ = ["Limits", "create_app"]
