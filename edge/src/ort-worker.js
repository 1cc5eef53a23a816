// The opt-in worker: the attention model through onnxruntime-web (bundle ~4 MB gzip: Workers Paid).
// It serves table models too, so a Markov/PPM fallback can be synced to it.
import { createWorker } from "./app.js";
import bundle from "./generated/bundle.js";
import { OrtModel } from "./ort-model.js";
import { TableModel } from "./table.js";

export default createWorker({ builders: { table: TableModel, onnx: OrtModel }, bundle, workerKind: "ort" });
