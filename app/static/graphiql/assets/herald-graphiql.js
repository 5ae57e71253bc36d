// Boots GraphiQL from the JSON config the server renders into the page. Kept out of the
// HTML so the page needs no inline script (a strict Content-Security-Policy stays possible).
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("herald-graphiql-config").textContent);
  var fetchUrl = config.fetchUrl || window.location.pathname;

  // ?query=... (and variables, headers) share a query by link, like GraphiQL's own examples.
  var params = new URLSearchParams(window.location.search);

  function updateURL(key, value) {
    if (value) params.set(key, value); else params.delete(key);
    var search = params.toString();
    history.replaceState(null, "", search ? "?" + search : window.location.pathname);
  }

  // Subscriptions: a small graphql-transport-ws client (the protocol graphql-ws speaks),
  // handed to GraphiQL as its `wsClient`. The default headers (the development key) go in
  // connection_init, as graphql-ws clients send `connectionParams`.
  function transportWsClient(url, connectionParams) {
    var opened = null, socket = null, nextId = 1, sinks = {};

    function send(message) { socket.send(JSON.stringify(message)); }

    function fail(error) {
      Object.keys(sinks).forEach(function (id) {
        var sink = sinks[id];
        delete sinks[id];
        sink.error(error);
      });
    }

    function connect() {
      if (opened) return opened;
      opened = new Promise(function (resolve, reject) {
        var ws = new WebSocket(url, "graphql-transport-ws");
        ws.onopen = function () {
          ws.send(JSON.stringify({ type: "connection_init", payload: connectionParams }));
        };
        ws.onmessage = function (event) {
          var message = JSON.parse(event.data);
          var sink = message.id && sinks[message.id];
          if (message.type === "connection_ack") { socket = ws; resolve(); }
          else if (message.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
          else if (!sink) return;
          else if (message.type === "next") sink.next(message.payload);
          else if (message.type === "error") {
            // Shown like any other result: the errors, then the operation ends.
            delete sinks[message.id];
            sink.next({ errors: message.payload });
            sink.complete();
          } else if (message.type === "complete") {
            delete sinks[message.id];
            sink.complete();
          }
        };
        ws.onclose = function (event) {
          opened = null;
          socket = null;
          reject(event);
          fail(new Error("Socket closed: " + event.code + " " + (event.reason || "")));
        };
      });
      return opened;
    }

    return {
      subscribe: function (payload, sink) {
        var id = String(nextId++);
        sinks[id] = sink;
        connect().then(function () {
          if (sinks[id]) send({ id: id, type: "subscribe", payload: payload });
        }, function () {});
        return function () {
          if (sinks[id] && socket) send({ id: id, type: "complete" });
          delete sinks[id];
        };
      },
    };
  }

  var wsUrl = new URL(fetchUrl, window.location.href);
  wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";

  // Default headers (e.g. the development Authorization) fill the Headers tab: what is
  // sent is what is shown, and can be edited or removed there. Subscriptions send them in
  // connection_init.
  var defaults = config.defaultHeaders || {};
  var fetcher = GraphiQL.createFetcher({
    url: fetchUrl,
    wsClient: transportWsClient(wsUrl.href, defaults),
  });
  var defaultHeaders = Object.keys(defaults).length ? JSON.stringify(defaults, null, 2) : undefined;

  function App() {
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: config.defaultQuery,
      query: params.get("query") || undefined,
      variables: params.get("variables") || undefined,
      headers: params.get("headers") || defaultHeaders,
      defaultHeaders: defaultHeaders,
      onEditQuery: function (v) { updateURL("query", v); },
      onEditVariables: function (v) { updateURL("variables", v); },
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      inputValueDeprecation: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(App));
})();
