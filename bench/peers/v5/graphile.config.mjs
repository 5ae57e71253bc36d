// PostGraphile 5 as bench/peers.py runs it: the Amber preset (V4-compatible naming),
// no GraphiQL. Connection, schema, host and port come from the command line.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

export default {
  extends: [PostGraphileAmberPreset],
  grafserv: { graphiql: false },
};
