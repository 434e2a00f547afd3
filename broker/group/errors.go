package group

import "errors"

// Errors returned by the coordinator. They are sentinel values, sometimes
// wrapped with detail, so match them with errors.Is. A transport maps them to
// its own codes; the Kafka transport uses these Kafka error codes:
//
//	ErrUnknownTopic              3  UNKNOWN_TOPIC_OR_PARTITION (from Options.CheckPartition)
//	ErrOffsetMetadataTooLarge   12  OFFSET_METADATA_TOO_LARGE
//	ErrCoordinatorNotAvailable  15  COORDINATOR_NOT_AVAILABLE (closed coordinator, storage failure)
//	ErrIllegalGeneration        22  ILLEGAL_GENERATION
//	ErrInconsistentProtocol     23  INCONSISTENT_GROUP_PROTOCOL
//	ErrInvalidGroupID           24  INVALID_GROUP_ID
//	ErrUnknownMemberID          25  UNKNOWN_MEMBER_ID
//	ErrInvalidSessionTimeout    26  INVALID_SESSION_TIMEOUT
//	ErrRebalanceInProgress      27  REBALANCE_IN_PROGRESS
//	ErrNonEmptyGroup            68  NON_EMPTY_GROUP
//	ErrGroupIDNotFound          69  GROUP_ID_NOT_FOUND
//	ErrMemberIDRequired         79  MEMBER_ID_REQUIRED
//	ErrFencedInstanceID         82  FENCED_INSTANCE_ID
//	ErrGroupSubscribedToTopic   86  GROUP_SUBSCRIBED_TO_TOPIC
//
// A context error (context.Canceled, context.DeadlineExceeded) from a
// blocking call means the caller gave up; a Kafka transport has nobody to
// answer then. Any other error is unexpected (UNKNOWN_SERVER_ERROR, -1).
var (
	ErrUnknownTopic            = errors.New("group: unknown topic or partition")
	ErrOffsetMetadataTooLarge  = errors.New("group: offset metadata too large")
	ErrCoordinatorNotAvailable = errors.New("group: coordinator not available")
	ErrIllegalGeneration       = errors.New("group: illegal generation")
	ErrInconsistentProtocol    = errors.New("group: inconsistent group protocol")
	ErrInvalidGroupID          = errors.New("group: invalid group id")
	ErrUnknownMemberID         = errors.New("group: unknown member id")
	ErrInvalidSessionTimeout   = errors.New("group: invalid session timeout")
	ErrRebalanceInProgress     = errors.New("group: rebalance in progress")
	ErrNonEmptyGroup           = errors.New("group: group is not empty")
	ErrGroupIDNotFound         = errors.New("group: group id not found")
	ErrMemberIDRequired        = errors.New("group: member id required")
	ErrFencedInstanceID        = errors.New("group: fenced instance id")
	ErrGroupSubscribedToTopic  = errors.New("group: group is subscribed to the topic")
)

// KafkaCode returns the Kafka error code for err: 0 for nil, the code of the
// sentinel err matches (see the table above), and -1 (UNKNOWN_SERVER_ERROR)
// for anything else.
func KafkaCode(err error) int16 {
	if err == nil {
		return 0
	}
	for _, c := range kafkaCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return -1
}

var kafkaCodes = []struct {
	err  error
	code int16
}{
	{ErrUnknownTopic, 3},
	{ErrOffsetMetadataTooLarge, 12},
	{ErrCoordinatorNotAvailable, 15},
	{ErrIllegalGeneration, 22},
	{ErrInconsistentProtocol, 23},
	{ErrInvalidGroupID, 24},
	{ErrUnknownMemberID, 25},
	{ErrInvalidSessionTimeout, 26},
	{ErrRebalanceInProgress, 27},
	{ErrNonEmptyGroup, 68},
	{ErrGroupIDNotFound, 69},
	{ErrMemberIDRequired, 79},
	{ErrFencedInstanceID, 82},
	{ErrGroupSubscribedToTopic, 86},
}
