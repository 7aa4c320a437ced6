/**
 * The targets the bench holds the sender to against the native ceiling (bench/native_ceiling.ts),
 * and the check that says whether a run met them. Pure: figures in, verdicts out.
 * @module
 */

import { MiB } from "../src/format/mod.ts";

/** One 4 MiB transfer at default settings must reach this share of the native pipe. */
export const MIN_SINGLE_RATIO_TO_NATIVE = 0.8;
/** The sender may spend at most this multiple of the native publisher's CPU per MiB. */
export const MAX_CPU_RATIO_TO_NATIVE = 1.5;

/** Figures of one run that the targets are checked on. */
export interface NativeTargetInput {
  /** The device of the transfer (`js`, `native`), named in the verdicts when given. */
  device?: string;
  /** Throughput of the default single transfer as a ratio to the native pipe at its chunk size. */
  singleRatioToNative?: number;
  /** Image bytes of that transfer (the target is stated for 4 MiB). */
  singleImageBytes?: number;
  /** Sender CPU seconds per MiB over the default single transfers. */
  senderCpuSecondsPerMiB?: number;
  /** Native publisher CPU seconds per MiB at the same chunk size. */
  nativeCpuSecondsPerMiB?: number;
}

/** The verdict on one target. */
export interface TargetVerdict {
  target: string;
  /** The measured figure, compared with `limit`. */
  value: number;
  limit: number;
  holds: boolean;
  /** Set when the run could not judge the target as stated, e.g. a smaller image in --quick. */
  note?: string;
}

const FULL_IMAGE_BYTES = 4 * MiB;

/** Checks the targets a run has figures for; missing figures give no verdict. */
export function checkNativeTargets(input: NativeTargetInput): TargetVerdict[] {
  const out: TargetVerdict[] = [];
  const of = input.device === undefined ? "" : ` (${input.device} device)`;
  if (input.singleRatioToNative !== undefined && Number.isFinite(input.singleRatioToNative)) {
    const verdict: TargetVerdict = {
      target: `one transfer at default settings${of} ≥ ${MIN_SINGLE_RATIO_TO_NATIVE} × native pipe`,
      value: input.singleRatioToNative,
      limit: MIN_SINGLE_RATIO_TO_NATIVE,
      holds: input.singleRatioToNative >= MIN_SINGLE_RATIO_TO_NATIVE,
    };
    if (input.singleImageBytes !== undefined && input.singleImageBytes !== FULL_IMAGE_BYTES) {
      verdict.note = `image is ${input.singleImageBytes} B; the target is stated for 4 MiB`;
    }
    out.push(verdict);
  }
  const sender = input.senderCpuSecondsPerMiB;
  const native = input.nativeCpuSecondsPerMiB;
  if (sender !== undefined && native !== undefined && native > 0) {
    out.push({
      target: `sender CPU per MiB${of} ≤ ${MAX_CPU_RATIO_TO_NATIVE} × native publisher`,
      value: sender / native,
      limit: MAX_CPU_RATIO_TO_NATIVE,
      holds: sender / native <= MAX_CPU_RATIO_TO_NATIVE,
    });
  }
  return out;
}
