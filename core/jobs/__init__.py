"""The job: model, records, Redis store, submission, cancellation, fair turns, what a status change sets off."""
