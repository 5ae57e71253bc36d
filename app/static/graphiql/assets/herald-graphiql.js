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

  // Default headers (e.g. the development Authorization) fill the Headers tab: what is
  // sent is what is shown, and can be edited or removed there.
  var fetcher = GraphiQL.createFetcher({ url: fetchUrl });
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
