/**
 * The topic builders and parsers of src/protocol/topics.ts against tests/vectors/topics.json
 * (protocol §2); the C++ core runs the same vectors (firmware topics_test.cpp).
 */
import { assertEquals } from "./_assert.ts";
import {
  ackTopicProblem,
  DecodeError,
  decodeOnTopic,
  deviceTopics,
  MessageType,
  type MessageTypeName,
  parseDeviceTopic,
  senderIdProblem,
  senderSubscriptions,
  sharedImageTopic,
  type TopicKind,
} from "../src/protocol/mod.ts";

interface BuildVector {
  prefix: string;
  deviceId: string;
  kind: Exclude<TopicKind, "image">;
  senderId?: string;
  topic: string;
}
interface ParseVector {
  prefix: string;
  deviceId: string;
  topic: string;
  kind: TopicKind | null;
  senderId?: string;
}

const doc = JSON.parse(
  Deno.readTextFileSync(new URL("./vectors/topics.json", import.meta.url)),
) as {
  build: BuildVector[];
  parse: ParseVector[];
  carries: { kind: TopicKind; types: MessageTypeName[] }[];
  shared: { prefix: string; sha256: string; streamId: number; topic: string }[];
};

for (const v of doc.shared) {
  Deno.test(`sharedImageTopic() builds "${v.topic}" for stream ${v.streamId}`, () => {
    assertEquals(sharedImageTopic(v.prefix, v.sha256, v.streamId), v.topic);
  });
}

function build(v: BuildVector): string {
  const t = deviceTopics(v.prefix, v.deviceId);
  if (v.kind === "ack") return t.ack(v.senderId!);
  return t[v.kind];
}

for (const v of doc.build) {
  Deno.test(`deviceTopics() builds the ${v.kind} topic "${v.topic}"`, () => {
    assertEquals(build(v), v.topic);
  });
}

for (const v of doc.parse) {
  Deno.test(`parseDeviceTopic() reads "${v.topic}" of "${v.deviceId}" as ${v.kind}`, () => {
    const got = parseDeviceTopic(v.prefix, v.topic);
    const mine = got !== null && got.deviceId === v.deviceId ? got : null;
    assertEquals(mine?.kind ?? null, v.kind);
    if (v.kind === "ack") assertEquals(mine?.senderId, v.senderId);
    assertEquals(ackTopicProblem(v.prefix, v.deviceId, v.topic) === null, v.kind === "ack");
  });
}

Deno.test("senderSubscriptions() shares requests and status but never the acks", () => {
  assertEquals(senderSubscriptions("ota", "s1", "g"), {
    requests: "$share/g/ota/dev/+/req",
    acks: "ota/dev/+/ack/s1",
    status: "$share/g/ota/dev/+/status",
  });
  assertEquals(senderSubscriptions("ota", "s1").requests, "ota/dev/+/req");
});

Deno.test("deviceTopics() gives the namespace and its wildcard filter", () => {
  const t = deviceTopics("ota", "d1");
  assertEquals([t.namespace, t.all], ["ota/dev/d1/", "ota/dev/d1/#"]);
});

for (const v of doc.carries) {
  Deno.test(`decodeOnTopic() takes only ${v.types.join(", ")} on the ${v.kind} topic`, () => {
    for (let type = 0; type <= 8; type++) {
      const header = new Uint8Array([0x4F, 0x54, 0x01, type]);
      let code: string | undefined;
      try {
        decodeOnTopic(v.kind, header);
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        code = err.code;
      }
      const carried = v.types.some((name) => MessageType[name] === type);
      // A carried type gets past the type check and fails later (a bare header is TRUNCATED).
      assertEquals(code, carried ? "TRUNCATED" : "UNEXPECTED_TYPE", `type ${type}`);
    }
  });
}

Deno.test("senderIdProblem() refuses the reserved last levels of device topics and bad ids", () => {
  for (const id of ["req", "status", "data", "error", "offer", "a/b", "", "x".repeat(65)]) {
    assertEquals(typeof senderIdProblem(id), "string", id);
  }
  for (const id of ["s1", "ota-sender.2", "ack"]) assertEquals(senderIdProblem(id), null, id);
});
