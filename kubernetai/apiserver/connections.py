# -*- test-case-name: tests.test_apiserver -*-
"""
The test API server's connections (L{kubernetai.apiserver.server}): a watch's
streaming response, the open connections its faults and stop() cut, and the
TLS context a new certificate replaces between connections.
"""

import json

from twisted.internet import defer
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.internet.task import LoopingCall
from twisted.protocols.policies import WrappingFactory
from zope.interface import implementer


class WatchStream:
    """One streaming watch response: it writes the events its query matches as JSON lines."""

    def __init__(self, request, query):
        self.request = request
        self.query = query
        self.open = True
        self._bookmarks = None
        self._deadline = None
        request.setHeader(b"content-type", b"application/json")
        request.write(b"")  # sends the headers now, as the real server does

    def send(self, event_type, obj):
        """Write one event line."""
        if self.open:
            self.request.write(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")

    def offer(self, event):
        """Send the event if this watch's client should see it, as the type it should see."""
        event_type = self.query.event_type(event)
        if event_type:
            self.send(event_type, event.obj)

    def schedule(self, reactor, bookmark_interval, timeout, bookmark):
        """Send C{bookmark()} every C{bookmark_interval} seconds; end after C{timeout} seconds."""
        if bookmark_interval:
            self._bookmarks = LoopingCall(lambda: self.send("BOOKMARK", bookmark()))
            self._bookmarks.clock = reactor
            self._bookmarks.start(bookmark_interval, now=False)
        if timeout:
            self._deadline = reactor.callLater(timeout, self.finish)

    def finish(self):
        """End the stream cleanly (the chunked body's last chunk is sent)."""
        if self.open:
            self.closed()
            self.request.finish()

    def abort(self):
        """Cut the connection under the stream."""
        if self.open:
            self.closed()
            self.request.transport.abortConnection()

    def closed(self):
        """Stop every timer; send nothing more."""
        self.open = False
        if self._bookmarks is not None and self._bookmarks.running:
            self._bookmarks.stop()
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()


class ConnectionTracker(WrappingFactory):
    """Keeps the open connections so that faults and stop() can cut them; while C{cutting},
    closes each new one at once and notes when it came."""

    def __init__(self, factory, reactor):
        super().__init__(factory)
        self._waiting = []
        self._reactor = reactor
        self.cutting = False
        self.cut_at = []
        self.accepted = 0

    def buildProtocol(self, addr):
        if self.cutting:
            self.cut_at.append(self._reactor.seconds())
            return None  # the port closes the new connection at once
        self.accepted += 1
        return super().buildProtocol(addr)

    def abort_all(self):
        """Abort every open connection."""
        for protocol in list(self.protocols):
            protocol.transport.abortConnection()

    def when_idle(self):
        """A Deferred that fires once no connection is open."""
        if not self.protocols:
            return defer.succeed(None)
        waiting = defer.Deferred()
        self._waiting.append(waiting)
        return waiting

    def unregisterProtocol(self, protocol):
        super().unregisterProtocol(protocol)
        if not self.protocols:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)


@implementer(IOpenSSLContextFactory)
class SwappableContext:
    """A TLS context factory whose certificate options can be replaced between connections."""

    options = None

    def getContext(self):
        return self.options.getContext()
