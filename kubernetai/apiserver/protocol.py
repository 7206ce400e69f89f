# -*- test-case-name: tests.test_apiserver -*-
"""
How the test API server (L{kubernetai.apiserver.server}) answers a request it
has let through: injected failures, tokens, discovery and C{/readyz}, the
forbidden resources, and the list and watch protocol (pages with C{continue},
C{resourceVersion} too large or too old, watches from a version or from now,
bookmarks), as kube-apiserver v1.35 answers them.
"""

import json
import uuid

from kubernetai.apiserver.connections import WatchStream
from kubernetai.apiserver.resources import (
    DISCOVERY,
    InvalidOptions,
    ListOptions,
    Query,
    list_item,
    not_found_status,
    status_object,
    too_large_status,
)

_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter."
)
_KEPT_CONTINUATIONS = 64


class ListWatchProtocol:
    """The answering half of L{kubernetai.apiserver.server.ApiServer}, which holds the state it reads."""

    def _answer(self, request, target, params):
        code, count, retry_after = self._failure
        if count:
            self._failure = (code, count - 1, retry_after)
            if retry_after is not None:
                request.setHeader(b"retry-after", b"%d" % (retry_after,))
            return _respond(request, code, status_object(code, f"injected failure {code}"))
        if self.token and not _bearer_token_is(request.getHeader("authorization"), self.token):
            return _respond(request, 401, status_object(401, "Unauthorized"))
        if target is None:
            return self._discovery(request)
        if target[0].plural in self._forbidden:
            group = target[0].api_version.rpartition("/")[0]
            message = (f'{target[0].plural} is forbidden: User "system:serviceaccount:kube-system:coredns" '
                       f'cannot list resource "{target[0].plural}" in API group "{group}"')
            return _respond(request, 403, status_object(403, message))
        try:
            options = ListOptions.from_params(params)
        except InvalidOptions as error:
            return _respond(request, 422, error.status())
        except ValueError as error:
            return _respond(request, 400, status_object(400, str(error)))
        query = Query(target[0], target[1], options.selector)
        if options.watch:
            self._watch(request, query, options)
        else:
            self._list(request, query, options)

    def _discovery(self, request):
        path = "/" + "/".join(part for part in request.path.decode().split("/") if part)
        if path == "/readyz":
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(b"ok")
            return request.finish()
        if path in DISCOVERY:
            return _respond(request, 200, DISCOVERY[path])
        if _served_group_version(path):
            return _respond(request, 404, not_found_status())
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.write(b"404 page not found\n")
        request.finish()

    def _list(self, request, query, options):
        if not options.continue_token and (options.resource_version or 0) > self._resource_version:
            request.setHeader(b"retry-after", b"1")
            return _respond(request, 504, too_large_status(options.resource_version, self._resource_version))
        if options.continue_token:
            version, items = self._continuations.pop(options.continue_token, (None, None))
            if items is None:
                return _respond(request, 410, status_object(410, _CONTINUE_EXPIRED))
        else:
            version = self._resource_version
            stored = self._objects[query.resource.plural]
            items = [list_item(stored[key]) for key in sorted(stored) if query.matches(stored[key])]
            items += self.list_extras[query.resource.plural]
        metadata = {"resourceVersion": str(version)}
        if options.limit and len(items) > options.limit:
            items, rest = items[:options.limit], items[options.limit:]
            metadata.update(self._continuation(version, rest))
        kind = {"kind": query.resource.kind + "List", "apiVersion": query.resource.api_version}
        _respond(request, 200, {**kind, "metadata": metadata, "items": items})

    def _continuation(self, version, rest):
        token = uuid.uuid4().hex
        self._continuations[token] = (version, rest)
        while len(self._continuations) > _KEPT_CONTINUATIONS:
            del self._continuations[next(iter(self._continuations))]
        return {"continue": token, "remainingItemCount": len(rest)}

    def _watch(self, request, query, options):
        watch = WatchStream(request, query)
        since = options.resource_version
        if since is not None and since < self._horizon:
            message = f"too old resource version: {since} ({self._horizon})"
            watch.send("ERROR", status_object(410, message))
            return watch.finish()
        if since is None:
            stored = self._objects[query.resource.plural]
            for key in sorted(stored):
                if query.matches(stored[key]):
                    watch.send("ADDED", stored[key])
        else:
            for event in self._history:
                if event.resource_version > since:
                    watch.offer(event)
        self._watches.add(watch)
        request.notifyFinish().addBoth(self._forget_watch, watch)
        bookmark = {"kind": query.resource.kind, "apiVersion": query.resource.api_version}
        watch.schedule(
            self._reactor,
            self.bookmark_interval if options.bookmarks else None,
            options.timeout,
            lambda: {**bookmark, "metadata": {"resourceVersion": str(self._resource_version)}},
        )

    def _forget_watch(self, _, watch):
        watch.closed()
        self._watches.discard(watch)


def _respond(request, code, body):
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.write(json.dumps(body).encode())
    request.finish()


def _bearer_token_is(authorization, token):
    """Whether an Authorization header carries C{token}; the scheme is case-insensitive (RFC 7235)."""
    scheme, _, credentials = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and credentials == token


def _served_group_version(path):
    """Whether C{path} lies under an API group version this server serves (C{/api/v1/...})."""
    return any(path.startswith(prefix + "/") for prefix in ("/api/v1", *(
        "/apis/" + version["groupVersion"] for group in DISCOVERY["/apis"]["groups"] for version in group["versions"])))
