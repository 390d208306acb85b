# A deliberately broken WebSocket echo server, to show that tests/autobahn/run.sh fails when it
# should (tests/autobahn/selftest.sh): it echoes every message without its last byte (reversing
# would not do: most of Autobahn's payloads are one byte repeated). Runs on the Autobahn
# package that wstest brings (Python 2.7), on 127.0.0.1 only.
#
# Usage: python2.7 broken_echo.py PORT
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor


class BrokenEcho(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.sendMessage(payload[:-1], isBinary)


port = int(sys.argv[1])
factory = WebSocketServerFactory("ws://127.0.0.1:%d" % port)
factory.protocol = BrokenEcho
reactor.listenTCP(port, factory, interface="127.0.0.1")
reactor.run()
