"""Every API error is a JSON body with a `detail` message, including the ones DRF does not raise."""

from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, (list, dict)) and "detail" not in response.data:
        response.data = {"detail": "The request was not valid.", "errors": response.data}
    return response
