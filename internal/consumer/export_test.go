package consumer

// RecordBatchSize exposes recordBatchSize to the external tests, which use it to build a message
// exactly at a topic's size limit.
var RecordBatchSize = recordBatchSize
