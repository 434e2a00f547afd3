// kafkajs 2.2.4 against a running samsa broker. Run by tests/e2e
// (TestKafkaJS), which sets SAMSA_BROKERS and SAMSA_MANIFEST, then reads the
// produced records back with franz-go and compares them with the manifest this
// file writes. (kafkajs consumers need consumer groups: not tested here.)
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { Kafka, CompressionTypes, Partitioners, logLevel } from 'kafkajs'

const brokers = (process.env.SAMSA_BROKERS ?? '').split(',').filter(Boolean)
if (brokers.length === 0) {
  throw new Error('SAMSA_BROKERS is not set (host:port of a samsa broker)')
}

// kafkajs logs errors to stderr, except the one a test provokes on purpose.
let expectTopicExists = false
const logCreator = () => ({ namespace, label, log }) => {
  if (expectTopicExists && log.error === 'Topic creation errors') return
  const { message, timestamp, logger, ...rest } = log
  console.error(`kafkajs ${label} [${namespace}] ${message} ${JSON.stringify(rest)}`)
}

const kafka = new Kafka({
  clientId: 'samsa-e2e-kafkajs',
  brokers,
  logLevel: logLevel.ERROR,
  logCreator,
  connectionTimeout: 3000,
  requestTimeout: 10000,
  retry: { retries: 2, initialRetryTime: 100 },
})
const admin = kafka.admin()
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })

const PARTITIONS = 3
const topics = { plain: 'kafkajs-plain', gzip: 'kafkajs-gzip', doomed: 'kafkajs-doomed' }
const t0 = Date.now() - 3600_000 // first send's timestamps; the second's are an hour later
const manifest = {} // topic -> records as acknowledged, for the Go side

before(async () => {
  await admin.connect()
  await producer.connect()
})

after(async () => {
  await producer.disconnect()
  await admin.disconnect()
  if (process.env.SAMSA_MANIFEST) {
    writeFileSync(process.env.SAMSA_MANIFEST, JSON.stringify(manifest, null, 1))
  }
})

test('admin createTopics and listTopics', async () => {
  const created = await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: topics.plain, numPartitions: PARTITIONS },
      { topic: topics.gzip, numPartitions: PARTITIONS },
      { topic: topics.doomed, numPartitions: 1 },
    ],
  })
  assert.equal(created, true, 'createTopics of new topics resolves true')
  expectTopicExists = true
  const again = await admin.createTopics({ topics: [{ topic: topics.plain, numPartitions: PARTITIONS }] })
  expectTopicExists = false
  assert.equal(again, false, 'createTopics of an existing topic resolves false')

  const listed = await admin.listTopics()
  for (const name of Object.values(topics)) {
    assert.ok(listed.includes(name), `listTopics ${JSON.stringify(listed)} includes ${name}`)
  }
  const md = await admin.fetchTopicMetadata({ topics: [topics.plain] })
  assert.equal(md.topics.length, 1)
  const parts = md.topics[0].partitions.map((p) => p.partitionId).sort()
  assert.deepEqual(parts, [0, 1, 2])
})

// messages builds n records for partition p of a send; seq numbers them.
function messages(send, n) {
  const out = []
  for (let i = 0; i < n; i++) {
    const seq = send * 1000 + i
    out.push({
      partition: i % PARTITIONS,
      key: i % 11 === 5 ? null : `key-${seq}`,
      value: i % 13 === 7 ? null : `value ${seq} héllo ✓ ${'x'.repeat(i)}`,
      headers: { seq: String(seq), kind: send === 0 ? 'first' : 'second' },
      timestamp: String(t0 + send * 3600_000 + i),
    })
  }
  return out
}

for (const [name, compression] of [
  ['plain', CompressionTypes.None],
  ['gzip', CompressionTypes.GZIP],
]) {
  const topic = topics[name]
  const perSend = [30, 31] // records per send; partition p gets ceil((n-p)/3)
  const count = (n, p) => Math.ceil((n - p) / PARTITIONS)

  test(`producer.send ${name}: base offsets`, async () => {
    manifest[topic] = []
    for (let send = 0; send < perSend.length; send++) {
      const msgs = messages(send, perSend[send])
      const res = await producer.send({ topic, compression, acks: -1, messages: msgs })
      assert.equal(res.length, PARTITIONS, `one result per partition: ${JSON.stringify(res)}`)
      const next = [0, 1, 2].map((p) => (send === 0 ? 0 : count(perSend[0], p)))
      for (const r of res) {
        assert.equal(r.topicName, topic)
        assert.equal(r.errorCode, 0)
        assert.equal(r.baseOffset, String(next[r.partition]), `send ${send} partition ${r.partition} base offset`)
      }
      // Record where each message landed: partition order is send order.
      const off = [...next]
      for (const m of msgs) {
        manifest[topic].push({
          partition: m.partition,
          offset: off[m.partition]++,
          key: m.key,
          value: m.value,
          headers: m.headers,
          timestamp: Number(m.timestamp),
        })
      }
    }
  })

  test(`admin fetchTopicOffsets ${name}`, async () => {
    const offs = await admin.fetchTopicOffsets(topic)
    offs.sort((a, b) => a.partition - b.partition)
    assert.deepEqual(
      offs,
      [0, 1, 2].map((p) => {
        const high = String(count(perSend[0], p) + count(perSend[1], p))
        return { partition: p, offset: high, high, low: '0' }
      }),
    )
  })

  test(`admin fetchTopicOffsetsByTimestamp ${name}`, async () => {
    const at = async (ts) => {
      const offs = await admin.fetchTopicOffsetsByTimestamp(topic, ts)
      return offs.sort((a, b) => a.partition - b.partition).map((o) => o.offset)
    }
    const firstOfSecond = [0, 1, 2].map((p) => String(count(perSend[0], p)))
    const highs = [0, 1, 2].map((p) => String(count(perSend[0], p) + count(perSend[1], p)))
    assert.deepEqual(await at(t0 - 1000), ['0', '0', '0'], 'before everything')
    assert.deepEqual(await at(t0 + 1800_000), firstOfSecond, 'between the sends')
    // A record inside a batch: the first send's record i=7 (partition 1, offset 2).
    assert.deepEqual((await at(t0 + 6))[1], '2', 'inside a batch')
    assert.deepEqual(await at(Date.now() + 3600_000), highs, 'after everything: the high watermark')
  })
}

test('admin deleteTopics', async () => {
  await admin.deleteTopics({ topics: [topics.doomed], timeout: 5000 })
  const listed = await admin.listTopics()
  assert.ok(!listed.includes(topics.doomed), `listTopics ${JSON.stringify(listed)} no longer includes ${topics.doomed}`)
  assert.ok(listed.includes(topics.plain))
})
