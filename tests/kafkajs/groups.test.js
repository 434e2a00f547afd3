// kafkajs 2.2.4 consumer groups against a running samsa broker. Run by
// tests/e2e (TestGroupsKafkaJS), which produces SAMSA_GROUP_COUNT records to
// SAMSA_GROUP_TOPIC with franz-go, runs this file, and then checks the
// records it wrote to SAMSA_GROUP_RESULT and the group's committed offsets.
// Without SAMSA_GROUP_TOPIC (as when TestKafkaJS runs the whole directory)
// every test here is skipped.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { Kafka, logLevel } from 'kafkajs'

const topic = process.env.SAMSA_GROUP_TOPIC
const groupId = process.env.SAMSA_GROUP_ID || 'kafkajs-group'
const count = Number(process.env.SAMSA_GROUP_COUNT || 0)
const brokers = (process.env.SAMSA_BROKERS ?? '').split(',').filter(Boolean)
const skip = topic ? false : 'SAMSA_GROUP_TOPIC not set (run by tests/e2e TestGroupsKafkaJS)'
if (!skip && (brokers.length === 0 || !(count > 0))) {
  throw new Error('SAMSA_BROKERS and SAMSA_GROUP_COUNT must be set with SAMSA_GROUP_TOPIC')
}

const logCreator = () => ({ namespace, label, log }) => {
  const { message, timestamp, logger, ...rest } = log
  console.error(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(rest)}`)
}

let kafka, admin
const result = { first: [], second: [] }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

before(async () => {
  if (skip) return
  kafka = new Kafka({
    clientId: 'samsa-e2e-kafkajs-groups',
    brokers,
    logLevel: logLevel.ERROR,
    logCreator,
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 3, initialRetryTime: 100 },
  })
  admin = kafka.admin()
  await admin.connect()
})

after(async () => {
  if (skip) return
  await admin.disconnect()
  if (process.env.SAMSA_GROUP_RESULT) {
    writeFileSync(process.env.SAMSA_GROUP_RESULT, JSON.stringify(result, null, 1))
  }
})

// withTimeout rejects with what when p takes over ms.
// what is a string or a function giving one (evaluated at the timeout).
function withTimeout(p, ms, what) {
  let timer
  return Promise.race([
    p,
    new Promise((_, reject) => {
      const text = () => (typeof what === 'function' ? what() : what)
      timer = setTimeout(() => reject(new Error(`${text()}: timed out after ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

// endOffsets: partition -> high watermark (as a string, as kafkajs gives it).
async function endOffsets() {
  const offs = await admin.fetchTopicOffsets(topic)
  return Object.fromEntries(offs.map((o) => [o.partition, o.high]))
}

// committedOffsets: partition -> committed offset ('-1' when none).
async function committedOffsets() {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
  assert.equal(t.topic, topic)
  return Object.fromEntries(t.partitions.map((p) => [p.partition, p.offset]))
}

// waitCommitted polls until the group has committed the end of every
// partition.
async function waitCommitted(ms) {
  const want = await endOffsets()
  const deadline = Date.now() + ms
  let got
  while (Date.now() < deadline) {
    got = await committedOffsets()
    if (JSON.stringify(got) === JSON.stringify(want)) return got
    await sleep(100)
  }
  assert.deepEqual(got, want, `committed offsets of ${groupId} reach the end offsets within ${ms} ms`)
}

// consumeGroup runs one consumer in the group until it has n messages, waits
// for its commits, and disconnects (leaving the group).
async function consumeGroup(n, into) {
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 10000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
    retry: { retries: 3, initialRetryTime: 100 },
  })
  const joins = []
  consumer.on(consumer.events.GROUP_JOIN, (e) => joins.push(e.payload))
  let crashed = null
  let done, fail
  const all = new Promise((resolve, reject) => {
    done = resolve
    fail = reject
  })
  consumer.on(consumer.events.CRASH, (e) => {
    crashed = e.payload.error
    fail(new Error(`the consumer crashed: ${crashed}`))
  })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: true,
      eachMessage: async ({ partition, message }) => {
        into.push({ partition, offset: message.offset, value: message.value?.toString() ?? null })
        if (into.length >= n) done()
      },
    })
    const started = Date.now()
    await withTimeout(all, 30000, () => `consume ${n} messages (got ${into.length})`)
    console.log(`consumed ${into.length} messages in ${Date.now() - started} ms; joins: ${JSON.stringify(joins)}`)
    await waitCommitted(10000)
  } finally {
    await consumer.disconnect()
  }
  assert.equal(crashed, null, 'the consumer did not crash')
  assert.ok(joins.length >= 1, 'the consumer joined the group')
  return joins
}

test('a consumer group consumes every record from the beginning and commits', { skip }, async () => {
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  const partitions = md.topics[0].partitions.map((p) => p.partitionId).sort()
  const before = await committedOffsets()
  for (const p of partitions) assert.equal(before[p], '-1', `no commit for partition ${p} before the run`)

  const joins = await consumeGroup(count, result.first)
  const last = joins[joins.length - 1]
  assert.ok(last.isLeader, 'the only member leads the group')
  assert.deepEqual([...(last.memberAssignment[topic] ?? [])].sort(), partitions, 'the only member is assigned every partition')

  assert.equal(result.first.length, count, 'exactly the produced records, none twice')
  const seen = new Set(result.first.map((r) => `${r.partition}/${r.offset}`))
  assert.equal(seen.size, count, 'no record consumed twice')
})

test('a new member of the group resumes after the committed offsets', { skip }, async () => {
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  const partitions = md.topics[0].partitions.map((p) => p.partitionId)
  const from = await committedOffsets()
  const producer = kafka.producer()
  await producer.connect()
  const perPartition = 3
  try {
    await producer.send({
      topic,
      messages: partitions.flatMap((p) =>
        Array.from({ length: perPartition }, (_, i) => ({ partition: p, value: `second-${p}-${i}` })),
      ),
    })
  } finally {
    await producer.disconnect()
  }
  await consumeGroup(perPartition * partitions.length, result.second)
  // Within a partition kafkajs delivers in order: a resume from anywhere
  // before the committed offset would show up as an older offset here.
  for (const r of result.second) {
    assert.ok(BigInt(r.offset) >= BigInt(from[r.partition]),
      `partition ${r.partition} offset ${r.offset} is at or after the committed ${from[r.partition]}`)
    assert.match(r.value, /^second-/)
  }
  assert.equal(result.second.length, perPartition * partitions.length)
})
