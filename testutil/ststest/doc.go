// Package ststest is a small STS endpoint for tests: it answers AssumeRole,
// checks its parameters (role ARN, external ID, session name) as AWS does,
// records every call and hands out credentials that a versitygw user holds.
// It is a test double, not AWS: tests that use it say so.
package ststest
