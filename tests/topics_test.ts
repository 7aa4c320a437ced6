/**
 * The topic builders and parsers of src/protocol/topics.ts against tests/vectors/topics.json
 * (protocol §2); the C++ core runs the same vectors (firmware topics_test.cpp).
 */
import { assertEquals } from "./_assert.ts";
import {
  ackTopicProblem,
  deviceTopics,
  parseDeviceTopic,
  senderSubscriptions,
  type TopicKind,
} from "../src/protocol/mod.ts";

interface BuildVector {
  prefix: string;
  deviceId: string;
  kind: TopicKind;
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
) as { build: BuildVector[]; parse: ParseVector[] };

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
