// Every request this process sends, as the server receives it: imported before any client,
// so that the clients' own `fetch` is this one.
export const sent = [];

const send = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  const headers = new Headers(init.headers);
  const body = typeof init.body === "string" ? JSON.parse(init.body) : null;
  sent.push({ method: init.method ?? "GET", accept: headers.get("accept"), body });
  return send(input, init);
};
