// The default worker: Markov / PPM tables exported by `precache edge build` (Free-plan sized).
import { createWorker } from "./app.js";
import bundle from "./generated/bundle.js";
import { TableModel } from "./table.js";

export default createWorker({ builders: { table: TableModel }, bundle, workerKind: "table" });
