"""sansio_smtp: a sans-IO SMTP/ESMTP engine (RFC 5321 and its extensions).

Everything public is re-exported here from the private modules; import from
``sansio_smtp`` only.
"""

from ._address import *  # noqa: F403
from ._address import __all__ as _address_all
from ._auth import *  # noqa: F403
from ._auth import __all__ as _auth_all
from ._client import *  # noqa: F403
from ._client import __all__ as _client_all
from ._config import *  # noqa: F403
from ._config import __all__ as _config_all
from ._data import *  # noqa: F403
from ._data import __all__ as _data_all
from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all
from ._events import *  # noqa: F403
from ._events import __all__ as _events_all
from ._params import *  # noqa: F403
from ._params import __all__ as _params_all
from ._receivebuffer import *  # noqa: F403
from ._receivebuffer import __all__ as _receivebuffer_all
from ._reply import *  # noqa: F403
from ._reply import __all__ as _reply_all
from ._replyparser import *  # noqa: F403
from ._replyparser import __all__ as _replyparser_all
from ._server import *  # noqa: F403
from ._server import __all__ as _server_all
from ._state import *  # noqa: F403
from ._state import __all__ as _state_all

__all__ = sorted(
    {
        *_address_all,
        *_auth_all,
        *_client_all,
        *_config_all,
        *_data_all,
        *_errors_all,
        *_events_all,
        *_params_all,
        *_receivebuffer_all,
        *_reply_all,
        *_replyparser_all,
        *_server_all,
        *_state_all,
    }
)
