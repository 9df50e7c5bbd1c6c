"""One Streamlit browser session spoken over Streamlit's own websocket protocol, without a browser.

What a browser tab does, minus the rendering: it fetches the XSRF cookie (and the proxy's sticky
cookie) over HTTPS, opens ``/_stcore/stream`` with the XSRF token in the websocket subprotocol
header, sends ``BackMsg.rerun_script`` with the widget values the user set, and reads the
``ForwardMsg`` stream (``new_session`` at the start of each script run, one ``delta`` per element,
``script_finished`` at the end). Uploads go the browser's way too: ``file_urls_request`` over the
websocket, an HTTP ``PUT`` of the bytes to the URL the server hands out (with the ``X-Xsrftoken``
header), then the uploader's widget state naming the file. It is the same protocol as the
streamlit frontend of the pinned version (``streamlit/proto``), so the server cannot tell it from a
browser except by its speed: a user costs a few MB and little CPU here, where a Chromium renderer
per user fills a 2-core machine at about 8 users (docs/deployment.md).

Used by ``benchmarks/load_replicas.py`` for 50 concurrent users; ``tests/deploy/test_protocol_client.py``
drives the real app with it (sign in, pages, an upload, a form) so a Streamlit upgrade that changes
the protocol fails there first. Not simulated: rendering, the idle-check fragment's 30 s
``auto_rerun`` (ignored: a session here lives minutes, the idle limit is longer) and the client-side
message cache (none is announced, so the server sends every element in full, as to a fresh tab).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ssl
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileURLs, UploadedFileInfo
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

FINISHED_OK, COMPILE_ERROR, EARLY_FOR_RERUN, FRAGMENT_OK = 0, 1, 2, 3
"""``ForwardMsg.script_finished`` values (ForwardMsg.proto ScriptFinishedStatus)."""
CLOSED = -1  # ours: the socket ended while a run was awaited

T = TypeVar("T")


def run_clients(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a thread of its own, so it works inside a test session that has
    started sync Playwright (the shared ``browser`` fixture keeps an event loop running on the
    main thread until the session ends, and ``asyncio.run`` refuses to start under it)."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = asyncio.run(main)
        except BaseException as exc:  # handed to the caller's thread below
            out["error"] = exc

    thread = threading.Thread(target=target, name="streamlit-ws-clients")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]  # type: ignore[no-any-return]


WIDGET_KINDS = (
    "button",
    "checkbox",
    "date_input",
    "file_uploader",
    "multiselect",
    "number_input",
    "radio",
    "selectbox",
    "slider",
    "text_area",
    "text_input",
)
TEXT_KINDS = {  # element kind -> the field holding its text
    "markdown": "body",
    "heading": "body",
    "alert": "body",
    "progress": "text",
    "text": "body",
    "exception": "message",
}


class ProtocolError(RuntimeError):
    """The server did something a browser would show as an error (or nothing at all in time)."""


@dataclass
class ScriptRun:
    """What one script run sent: its elements by delta path, how it ended, how long it took."""

    elements: dict[tuple[int, ...], Element] = field(default_factory=dict)
    status: int | None = None
    seconds: float = 0.0

    def widgets(self, kind: str) -> list[Any]:
        return [
            getattr(e, kind)
            for _, e in sorted(self.elements.items())
            if e.WhichOneof("type") == kind
        ]

    def widget(self, kind: str, label: str) -> Any:
        """The one ``kind`` widget labelled ``label`` (the proto: ``.id``, ``.options`` ...)."""
        found = [w for w in self.widgets(kind) if w.label == label]
        if len(found) != 1:
            shown = sorted({w.label for w in self.widgets(kind)})
            raise ProtocolError(f"{len(found)} {kind} labelled {label!r} on the page; {shown}")
        return found[0]

    def texts(self, kind: str | None = None) -> list[str]:
        out = []
        for _, e in sorted(self.elements.items()):
            which = e.WhichOneof("type")
            if which in TEXT_KINDS and (kind is None or which == kind):
                out.append(str(getattr(getattr(e, which), TEXT_KINDS[which])))
        return out

    def has_text(self, fragment: str, kind: str | None = None) -> bool:
        return any(fragment in t for t in self.texts(kind))

    def exceptions(self) -> list[str]:
        return [f"{e.type}: {e.message}" for e in self.widgets("exception")]


class StreamlitSession:
    """A signed-out browser tab on ``base_url`` (``https://host:port`` or ``http://...``).

    ``await open()``, then drive it with :meth:`rerun` and the small helpers; each returns the
    :class:`ScriptRun` it waited for. Not thread-safe; one asyncio task per session.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.ssl = ssl.create_default_context()
        self.ssl.check_hostname = False  # loopback, the test proxy's self-signed certificate
        self.ssl.verify_mode = ssl.CERT_NONE
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self.ssl),
            urllib.request.HTTPCookieProcessor(self.cookies),
        )
        self._ws: Any = None
        self.session_id = ""
        self.pages: dict[str, str] = {}  # page title -> page_script_hash
        self.page_hash = ""
        self.last = ScriptRun()
        self._file_urls: dict[str, asyncio.Future[Sequence[FileURLs]]] = {}
        self._runs: asyncio.Queue[ScriptRun] = asyncio.Queue()
        self._current: ScriptRun | None = None
        self._reader: asyncio.Task[None] | None = None

    # ---- connection -------------------------------------------------------------------------

    async def open(self, page_name: str = "") -> ScriptRun:
        """Fetch the cookies, open the websocket, run the app's first script run (on the URL path
        ``page_name``, as a bookmark would)."""
        await asyncio.to_thread(self._http, "GET", "/_stcore/health")
        xsrf = self._cookie("_streamlit_xsrf")
        parts = urllib.parse.urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        self._ws = await websockets.connect(
            f"{scheme}://{parts.netloc}/_stcore/stream",
            subprotocols=[websockets.Subprotocol(p) for p in ("streamlit", xsrf or "")],
            additional_headers={"Origin": self.base_url, "Cookie": self._cookie_header()},
            ssl=self.ssl if scheme == "wss" else None,
            max_size=None,
            open_timeout=self.timeout_s,
        )
        self._reader = asyncio.create_task(self._read())
        return await self.rerun(page_name=page_name)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass

    # ---- script runs ------------------------------------------------------------------------

    async def rerun(
        self,
        widgets: Iterable[WidgetState] = (),
        *,
        page_script_hash: str | None = None,
        page_name: str = "",
    ) -> ScriptRun:
        """Send one rerun with ``widgets``' new values and wait until the script run ends (past any
        ``st.rerun()`` the app makes on the way); raises :class:`ProtocolError` on a compile error
        or no end within ``timeout_s``. ``page_name`` is the URL path a tab was opened on
        (``/patients`` sends ``patients``), as the frontend sends it on its first run."""
        if page_script_hash is not None:
            self.page_hash = page_script_hash
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = ""
        state.page_script_hash = self.page_hash
        state.page_name = page_name
        state.widget_states.widgets.extend(widgets)
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-GB"
        state.context_info.url = self.base_url + "/"
        while not self._runs.empty():  # a leftover run (e.g. an earlier early end) is not ours
            self._runs.get_nowait()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._ws.send(msg.SerializeToString())
        while True:
            remaining = self.timeout_s - (loop.time() - started)
            try:
                run = await asyncio.wait_for(self._runs.get(), timeout=max(0.0, remaining))
            except TimeoutError:
                raise ProtocolError(f"no end of the script run in {self.timeout_s:.0f} s") from None
            if run.status == EARLY_FOR_RERUN:  # st.rerun(): the next run is the one shown
                continue
            if run.status == CLOSED:
                raise ProtocolError("the websocket closed")
            if run.status == COMPILE_ERROR:
                raise ProtocolError("the page script did not compile")
            run.seconds = loop.time() - started
            self.last = run
            return run

    async def set(self, *states: WidgetState) -> ScriptRun:
        return await self.rerun(states)

    async def navigate(self, title: str) -> ScriptRun:
        if title not in self.pages:
            raise ProtocolError(f"no page {title!r}; {sorted(self.pages)}")
        return await self.rerun(page_script_hash=self.pages[title])

    # ---- widget values (what the frontend would send) ---------------------------------------

    def text(self, label: str, value: str, *, kind: str = "text_input") -> WidgetState:
        return WidgetState(id=self.last.widget(kind, label).id, string_value=value)

    def choose(self, label: str, option: str) -> WidgetState:
        """A selectbox's choice, by its displayed option text (what the frontend sends)."""
        box = self.last.widget("selectbox", label)
        if option not in box.options:
            raise ProtocolError(f"{option!r} is not an option of {label!r}: {list(box.options)}")
        return WidgetState(id=box.id, string_value=option)

    def click(self, label: str) -> WidgetState:
        return WidgetState(id=self.last.widget("button", label).id, trigger_value=True)

    async def upload(self, label: str, name: str, data: bytes) -> ScriptRun:
        """Put ``data`` into the file uploader ``label`` as ``name`` and rerun, as a drop would."""
        uploader = self.last.widget("file_uploader", label)
        request_id = uuid.uuid4().hex
        waiter: asyncio.Future[Sequence[FileURLs]] = asyncio.get_running_loop().create_future()
        self._file_urls[request_id] = waiter
        msg = BackMsg()
        msg.file_urls_request.request_id = request_id
        msg.file_urls_request.file_names.append(name)
        msg.file_urls_request.session_id = self.session_id
        await self._ws.send(msg.SerializeToString())
        urls = (await asyncio.wait_for(waiter, timeout=self.timeout_s))[0]
        await asyncio.to_thread(self._put_file, urls.upload_url, name, data)
        info = UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id, file_urls=urls)
        state = WidgetState(id=uploader.id)
        state.file_uploader_state_value.uploaded_file_info.append(info)
        return await self.rerun([state])

    # ---- the stream -------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self._on(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            ended = ScriptRun(status=CLOSED)
            self._runs.put_nowait(ended)  # wakes a waiter; rerun() reports the closed socket
            for waiter in self._file_urls.values():
                if not waiter.done():
                    waiter.set_exception(ProtocolError("websocket closed"))

    def _on(self, msg: ForwardMsg) -> None:
        which = msg.WhichOneof("type")
        if which == "new_session":
            init = msg.new_session.initialize
            if init.session_id:
                self.session_id = init.session_id
            if msg.new_session.page_script_hash:
                self.page_hash = msg.new_session.page_script_hash
            self._current = ScriptRun()
        elif which == "navigation":
            for page in msg.navigation.app_pages:
                self.pages[page.page_name] = page.page_script_hash
            if msg.navigation.page_script_hash:
                self.page_hash = msg.navigation.page_script_hash
        elif which == "delta" and self._current is not None:
            if msg.delta.WhichOneof("type") == "new_element":
                self._current.elements[tuple(msg.metadata.delta_path)] = msg.delta.new_element
        elif which == "script_finished":
            run = self._current or ScriptRun()
            if msg.script_finished == FRAGMENT_OK:  # not ours: only whole-page runs are awaited
                return
            run.status = int(msg.script_finished)
            self._current = None
            self._runs.put_nowait(run)
        elif which == "file_urls_response":
            waiter = self._file_urls.pop(msg.file_urls_response.response_id, None)
            if waiter is not None and not waiter.done():
                if msg.file_urls_response.error_msg:
                    waiter.set_exception(ProtocolError(msg.file_urls_response.error_msg))
                else:
                    waiter.set_result(list(msg.file_urls_response.file_urls))

    # ---- HTTP -------------------------------------------------------------------------------

    def _cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def _cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies)

    def _http(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        url = path if path.startswith("http") else self.base_url + path
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        with self._opener.open(request, timeout=self.timeout_s) as response:
            return bytes(response.read())

    def _put_file(self, upload_url: str, name: str, data: bytes) -> None:
        boundary = uuid.uuid4().hex
        body = b"".join(
            [
                f"--{boundary}\r\n".encode(),
                f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'.encode(),
                b"Content-Type: application/octet-stream\r\n\r\n",
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "X-Xsrftoken": self._cookie("_streamlit_xsrf") or "",
            "Origin": self.base_url,
        }
        self._http("PUT", urllib.parse.urljoin(self.base_url + "/", upload_url), body, headers)
