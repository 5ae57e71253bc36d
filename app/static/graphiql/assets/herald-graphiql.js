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

  // Subscriptions: a small graphql-transport-ws client (the protocol graphql-ws speaks).
  // Its connection_init carries `connectionParams`, as graphql-ws clients send them; the
  // socket closes once its last subscription ends.
  function transportWsClient(url, connectionParams) {
    var opened = null, current = null, socket = null, nextId = 1, sinks = {};

    function send(message) { socket.send(JSON.stringify(message)); }

    function fail(error) {
      Object.keys(sinks).forEach(function (id) {
        var sink = sinks[id];
        delete sinks[id];
        sink.error(error);
      });
    }

    function release(id) {
      delete sinks[id];
      if (Object.keys(sinks).length || !current) return;
      var ws = current;
      opened = current = socket = null; // a later subscription opens a socket of its own
      ws.close(1000, "Normal Closure");
    }

    function connect() {
      if (opened) return opened;
      opened = new Promise(function (resolve, reject) {
        var ws = current = new WebSocket(url, "graphql-transport-ws");
        ws.onopen = function () {
          ws.send(JSON.stringify({ type: "connection_init", payload: connectionParams }));
        };
        ws.onmessage = function (event) {
          if (ws !== current) return;
          var message = JSON.parse(event.data);
          var sink = message.id && sinks[message.id];
          if (message.type === "connection_ack") { socket = ws; resolve(); }
          else if (message.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
          else if (!sink) return;
          else if (message.type === "next") sink.next(message.payload);
          else if (message.type === "error") {
            // Shown like any other result: the errors, then the operation ends.
            release(message.id);
            sink.next({ errors: message.payload });
            sink.complete();
          } else if (message.type === "complete") {
            release(message.id);
            sink.complete();
          }
        };
        ws.onclose = function (event) {
          reject(event);
          if (ws !== current) return; // one this client closed itself
          opened = current = socket = null;
          fail(new Error("Socket closed: " + event.code + " " + (event.reason || "")));
        };
      });
      return opened;
    }

    return {
      idle: function () { return !Object.keys(sinks).length; },
      subscribe: function (payload, sink) {
        var id = String(nextId++);
        sinks[id] = sink;
        connect().then(function () {
          if (sinks[id]) send({ id: id, type: "subscribe", payload: payload });
        }, function () {});
        return function () {
          if (sinks[id] && socket) send({ id: id, type: "complete" });
          release(id);
        };
      },
    };
  }

  var wsUrl = new URL(fetchUrl, window.location.href);
  wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";

  // One client per set of headers: a subscription's connectionParams are the Headers tab as
  // it is when the subscription starts (GraphiQL hands the fetcher the headers per request,
  // but a `wsClient` given to createFetcher never sees them).
  var wsClients = {};
  function wsClientFor(headers) {
    var key = JSON.stringify(headers);
    Object.keys(wsClients).forEach(function (other) {
      if (other !== key && wsClients[other].idle()) delete wsClients[other];
    });
    if (!wsClients[key]) wsClients[key] = transportWsClient(wsUrl.href, headers);
    return wsClients[key];
  }

  // GraphiQL's own test (isSubscriptionWithName): the operation run is a subscription.
  function isSubscription(documentAST, operationName) {
    var operations = documentAST.definitions.filter(function (definition) {
      return definition.kind === "OperationDefinition";
    });
    var chosen = operations.filter(function (operation) {
      return operationName ? operation.name && operation.name.value === operationName : true;
    });
    return chosen.length === 1 && chosen[0].operation === "subscription";
  }

  // Queries and mutations over HTTP with the tab's headers (GraphiQL's fetcher); subscriptions
  // over WebSocket with the same headers as connectionParams.
  var httpFetcher = GraphiQL.createFetcher({ url: fetchUrl });
  function fetcher(params, options) {
    if (!(options && options.documentAST && isSubscription(options.documentAST, params.operationName))) {
      return httpFetcher(params, options);
    }
    var client = wsClientFor(options.headers || {});
    return {
      subscribe: function (observer) {
        var stop = client.subscribe(params, {
          next: function (value) { observer.next(value); },
          error: function (error) { observer.error(error); },
          complete: function () { observer.complete(); },
        });
        return { unsubscribe: stop };
      },
    };
  }

  // Default headers (e.g. the development Authorization) fill the Headers tab: what is
  // sent is what is shown, and can be edited or removed there.
  var defaults = config.defaultHeaders || {};
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
