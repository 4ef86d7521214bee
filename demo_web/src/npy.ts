/**
 * Reading the `.npy` files numpy writes (format 1.0-3.0), for the embedding: little-endian float32,
 * C order. Anything else is refused with an error that says what came.
 */

export interface NpyArray {
  data: Float32Array;
  shape: number[];
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function parseNpy(buffer: ArrayBuffer, name = "array"): NpyArray {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new TypeError(`${name}: expected a .npy file (magic \\x93NUMPY), got other bytes`);
  }
  const major = bytes[6];
  const view = new DataView(buffer);
  let headerLen: number;
  let offset: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    offset = 10;
  } else if (major === 2 || major === 3) {
    headerLen = view.getUint32(8, true);
    offset = 12;
  } else {
    throw new TypeError(`${name}: expected .npy format version 1-3, got ${major}`);
  }
  if (offset + headerLen > bytes.length) {
    throw new TypeError(`${name}: .npy header runs past the end of the file`);
  }
  const header = new TextDecoder("latin1").decode(bytes.subarray(offset, offset + headerLen));
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr !== "<f4") throw new TypeError(`${name}: expected dtype '<f4' (float32), got ${descr ?? "none"}`);
  if (fortran !== "False") throw new TypeError(`${name}: expected C order, got fortran_order ${fortran ?? "missing"}`);
  if (shapeText === undefined) throw new TypeError(`${name}: .npy header has no shape`);
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new TypeError(`${name}: bad shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const start = offset + headerLen;
  if (bytes.length - start !== count * 4) {
    throw new TypeError(`${name}: shape (${shape.join(", ")}) needs ${count * 4} data bytes, got ${bytes.length - start}`);
  }
  // copy: the data offset need not be 4-byte aligned
  const data = new Float32Array(buffer.slice(start));
  return { data, shape };
}

/**
 * A `.npy` file (format 1.0) of float32 `data` with `shape`, little-endian, C order, as
 * `numpy.save` writes it: `numpy.load` and `parseNpy` read it back.
 */
export function toNpy(data: Float32Array, shape: readonly number[]): Uint8Array<ArrayBuffer> {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new RangeError(`npy: shape (${shape.join(", ")}) needs ${count} values, got ${data.length}`);
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // the header (magic, version, length, dict, newline) pads to a multiple of 64 bytes
  const header = dict.padEnd(Math.ceil((10 + dict.length + 1) / 64) * 64 - 10 - 1, " ") + "\n";
  const out = new Uint8Array(10 + header.length + data.length * 4);
  out.set(MAGIC);
  out.set([1, 0], 6);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  const body = new DataView(out.buffer, 10 + header.length);
  for (let i = 0; i < data.length; i++) body.setFloat32(4 * i, data[i], true);
  return out;
}
