package kafka

import (
	"context"
	"errors"
	"slices"

	"github.com/samsa-broker/samsa/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const apiVersionsKey = 18

// reply is what a handler returns on the read path: a response ready now,
// or a function that computes it off the read path (long polls, waits for
// fsync), or neither (no response, as for acks=0 produce).
type reply struct {
	resp  kmsg.Response
	later func(ctx context.Context) kmsg.Response
	// encoded, if set, runs once the response is encoded (to recycle
	// buffers the response pointed into).
	encoded func()
	// closeAfter, if set, closes the connection once this response is
	// written, logging why (a failed authentication).
	closeAfter string
}

// handlerFunc answers one decoded request. It runs on the connection's read
// path, in request order.
type handlerFunc func(c *conn, req kmsg.Request) reply

// apiSpec is one implemented API: the versions advertised in ApiVersions
// and its handler.
type apiSpec struct {
	key      int16
	min, max int16
	handle   handlerFunc
}

// apis is the handler table, keyed by API key. Only keys listed here are
// advertised in ApiVersions; requests of other keys known to kmsg are
// answered with UNSUPPORTED_VERSION where the response has an error code.
//
// Group coordinator APIs plug in here when they are implemented:
// FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13),
// SyncGroup (14), OffsetCommit (8), OffsetFetch (9), DescribeGroups (15),
// ListGroups (16), DeleteGroups (42), OffsetDelete (47): add a register call
// in init with the version range and a handler calling the broker's group
// coordinator. SASL (17, 36) and the SCRAM credential APIs (50, 51) are
// registered here too but served and advertised only when Options.Auth is
// enabled (sasl.go); every handler checks the connection's permissions
// (authz.go).
var apis map[int16]*apiSpec

func register(key, minV, maxV int16, h handlerFunc) {
	if maxV > kmsg.RequestForKey(key).MaxVersion() {
		panic("kafka: advertised version beyond the codec's for " + keyName(key))
	}
	apis[key] = &apiSpec{key: key, min: minV, max: maxV, handle: h}
}

func init() {
	apis = make(map[int16]*apiSpec)
	register(0, 0, 13, handleProduce)          // Produce: v0-2 answered UNSUPPORTED_FOR_MESSAGE_FORMAT; v13 by topic id
	register(1, 0, 18, handleFetch)            // Fetch: v13+ by topic id
	register(2, 0, 11, handleListOffsets)      // ListOffsets
	register(3, 0, 13, handleMetadata)         // Metadata: v10+ topic ids
	register(18, 0, 5, handleApiVersions)      // ApiVersions
	register(19, 0, 7, handleCreateTopics)     // CreateTopics
	register(20, 0, 6, handleDeleteTopics)     // DeleteTopics: v6+ by topic id
	register(21, 0, 2, handleDeleteRecords)    // DeleteRecords
	register(22, 0, 5, handleInitProducerID)   // InitProducerId: idempotent producers only
	register(23, 0, 4, handleOffsetForEpoch)   // OffsetForLeaderEpoch
	register(32, 0, 4, handleDescribeConfigs)  // DescribeConfigs
	register(33, 0, 2, handleAlterConfigs)     // AlterConfigs
	register(37, 0, 3, handleCreatePartitions) // CreatePartitions
	register(44, 0, 1, handleIncrementalAlter) // IncrementalAlterConfigs
	register(60, 0, 2, handleDescribeCluster)  // DescribeCluster

	// Consumer groups (broker/group).
	register(8, 0, 9, handleOffsetCommit)     // OffsetCommit (v10 addresses topics by id)
	register(9, 0, 9, handleOffsetFetch)      // OffsetFetch: v8+ batches groups
	register(10, 0, 6, handleFindCoordinator) // FindCoordinator: v4+ batches keys
	register(11, 0, 9, handleJoinGroup)       // JoinGroup
	register(12, 0, 4, handleHeartbeat)       // Heartbeat
	register(13, 0, 5, handleLeaveGroup)      // LeaveGroup: v3+ batches members
	register(14, 0, 5, handleSyncGroup)       // SyncGroup
	register(15, 0, 5, handleDescribeGroups)  // DescribeGroups
	register(16, 0, 5, handleListGroups)      // ListGroups
	register(42, 0, 2, handleDeleteGroups)    // DeleteGroups
	register(47, 0, 0, handleOffsetDelete)    // OffsetDelete

	// Authentication: served only when Options.Auth is enabled (sasl.go).
	register(saslHandshakeKey, 0, 1, handleSaslHandshake)       // SaslHandshake: v0 raw tokens, v1 SaslAuthenticate
	register(saslAuthenticateKey, 0, 2, handleSaslAuthenticate) // SaslAuthenticate
	register(describeScramKey, 0, 0, handleDescribeScram)       // DescribeUserScramCredentials
	register(alterScramKey, 0, 0, handleAlterScram)             // AlterUserScramCredentials
}

// apiVersionsResponse lists every implemented API; the authentication
// APIs only when authOn.
func apiVersionsResponse(version, code int16, authOn bool) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	resp.ErrorCode = code
	keys := make([]int16, 0, len(apis))
	for k := range apis {
		if authOn || !authOnlyKey(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := apis[k]
		ak := kmsg.NewApiVersionsResponseApiKey()
		ak.ApiKey, ak.MinVersion, ak.MaxVersion = a.key, a.min, a.max
		resp.ApiKeys = append(resp.ApiKeys, ak)
	}
	return resp
}

func handleApiVersions(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ApiVersionsRequest)
	return reply{resp: apiVersionsResponse(req.Version, 0, c.s.authOn())}
}

// errorCode maps a Broker API error to a Kafka error code. allowed lists the
// codes the response type may carry (besides 0 and UNKNOWN_SERVER_ERROR);
// a code outside it becomes UNKNOWN_SERVER_ERROR, since clients crash on
// codes a response type never carries. nil allowed permits all.
func errorCode(err error, allowed ...int16) int16 {
	if err == nil {
		return 0
	}
	code := kerr.UnknownServerError.Code
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	for _, m := range errorMap {
		if errors.Is(err, m.err) {
			code = m.code
			break
		}
	}
	if allowed != nil && !slices.Contains(allowed, code) {
		return kerr.UnknownServerError.Code
	}
	return code
}

var errorMap = []struct {
	err  error
	code int16
}{
	{errUnknownTopicID, kerr.UnknownTopicID.Code},
	{broker.ErrUnknownTopic, kerr.UnknownTopicOrPartition.Code},
	{broker.ErrTopicExists, kerr.TopicAlreadyExists.Code},
	{broker.ErrInvalidTopic, kerr.InvalidTopicException.Code},
	{broker.ErrInvalidPartitions, kerr.InvalidPartitions.Code},
	{broker.ErrInvalidConfig, kerr.InvalidConfig.Code},
	{broker.ErrOffsetOutOfRange, kerr.OffsetOutOfRange.Code},
	{broker.ErrCorruptBatch, kerr.CorruptMessage.Code},
	{broker.ErrBatchTooLarge, kerr.MessageTooLarge.Code},
	{broker.ErrUnsupportedFormat, kerr.UnsupportedForMessageFormat.Code},
	{broker.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber.Code},
	{broker.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch.Code},
	// Non-retriable, and it tells a transactional client that its
	// transactional id is refused here.
	{broker.ErrTransactionsUnsupported, kerr.TransactionalIDAuthorizationFailed.Code},
	{broker.ErrDiskFull, kerr.KafkaStorageError.Code},
	{broker.ErrStorage, kerr.KafkaStorageError.Code},
	{broker.ErrTimeout, kerr.RequestTimedOut.Code},
	// Shutting down: retriable, the client refreshes metadata and retries.
	{broker.ErrClosed, kerr.NotLeaderForPartition.Code},
	// A produce filter said no (or failed under on_error reject): not
	// retriable; the message says why.
	{broker.ErrFilterRejected, kerr.PolicyViolation.Code},
}

// Error codes each response type may carry.
var (
	produceCodes = []int16{
		kerr.UnknownTopicOrPartition.Code, kerr.NotLeaderForPartition.Code, kerr.InvalidTopicException.Code,
		kerr.CorruptMessage.Code, kerr.MessageTooLarge.Code, kerr.UnsupportedForMessageFormat.Code,
		kerr.OutOfOrderSequenceNumber.Code, kerr.InvalidProducerEpoch.Code,
		kerr.TransactionalIDAuthorizationFailed.Code, kerr.KafkaStorageError.Code,
		kerr.RequestTimedOut.Code, kerr.UnknownTopicID.Code, kerr.PolicyViolation.Code,
	}
	fetchCodes = []int16{
		kerr.UnknownTopicOrPartition.Code, kerr.NotLeaderForPartition.Code, kerr.OffsetOutOfRange.Code,
		kerr.KafkaStorageError.Code, kerr.CorruptMessage.Code, kerr.UnknownTopicID.Code,
	}
	listOffsetsCodes = []int16{
		kerr.UnknownTopicOrPartition.Code, kerr.NotLeaderForPartition.Code, kerr.KafkaStorageError.Code,
		kerr.UnsupportedVersion.Code,
	}
	partitionCodes = []int16{ // DeleteRecords, OffsetForLeaderEpoch
		kerr.UnknownTopicOrPartition.Code, kerr.NotLeaderForPartition.Code, kerr.OffsetOutOfRange.Code,
		kerr.KafkaStorageError.Code, kerr.RequestTimedOut.Code,
	}
	topicAdminCodes = []int16{ // CreateTopics, DeleteTopics, CreatePartitions, configs
		kerr.UnknownTopicOrPartition.Code, kerr.TopicAlreadyExists.Code, kerr.InvalidTopicException.Code,
		kerr.InvalidPartitions.Code, kerr.InvalidConfig.Code, kerr.KafkaStorageError.Code,
		kerr.RequestTimedOut.Code, kerr.InvalidRequest.Code, kerr.UnknownTopicID.Code,
		kerr.InvalidReplicationFactor.Code, kerr.InvalidReplicaAssignment.Code,
	}
)

// errMessage is err's text for ErrorMessage fields, nil when err is nil.
// A filter's rejection gives the filter's own message.
func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	var fe *broker.FilterError
	if errors.As(err, &fe) {
		return &fe.Message
	}
	s := err.Error()
	return &s
}

func ptr[T any](v T) *T { return &v }
