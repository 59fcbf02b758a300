"""The app's functions, read once (azure-functions refuses a second `get_functions()`)."""

from __future__ import annotations

import os
from functools import cache

import azure.functions as func
from azure.functions.decorators.function_app import Function

from tests.support.app import sample_settings


@cache
def app_functions() -> dict[str, Function]:
    for name, value in sample_settings().items():
        os.environ.setdefault(name, value)
    os.environ["CA_BUNDLE"] = ""
    import function_app

    app: func.FunctionApp = function_app.app
    return {fn.get_function_name(): fn for fn in app.get_functions()}
