"""Upload-Post's part of the views: failure reasons per platform, and the contract's
`upload_platform_results` (one row per job and platform)."""

from __future__ import annotations

from sources.common.analytics import View, failure_rows_sql

FAILURE_ROWS = " UNION ALL ".join((
    failure_rows_sql(  # each failed platform, with its reason
        "upload_post", "{ds}.upload_post_uploads AS up_fu JOIN "
        "{ds}.upload_post_uploads__results AS up_fr ON up_fr._dlt_parent_id = up_fu._dlt_id",
        {"job_id": "up_fu.tracked_id", "item": "up_fr.platform",
         "reason": "COALESCE(up_fr.error_message, up_fr.message, up_fr.status)"},
        # failed by its flag or by its status alone; a retryable one only once the job ended
        where="(up_fr.success = FALSE OR up_fr.status = 'failed') AND (up_fr.status IS NULL "
              "OR up_fr.status <> 'retryable' OR up_fu.is_terminal)"),
    failure_rows_sql(  # a request that failed before any platform (stalled, not found)
        "upload_post", "{ds}.upload_post_uploads AS up_fj",
        {"job_id": "up_fj.tracked_id", "reason": "up_fj.failure_reason"},
        where="up_fj.platforms_failed = 0 AND up_fj.failure_reason IS NOT NULL")))

PLATFORM_RESULTS = View("upload_platform_results", """
    SELECT up_u.tracked_id AS job_id, up_r.platform,
           CASE WHEN up_r.status = 'retryable' AND NOT up_u.is_terminal THEN 'running'
                ELSE COALESCE(up_r.status, CASE WHEN up_r.success THEN 'completed'
                                                WHEN NOT up_r.success THEN 'failed' END)
           END AS status,
           up_r.success, COALESCE(up_r.error_message, up_r.message) AS message,
           up_r.upload_timestamp AS uploaded_at, up_u.job_ref
    FROM {ds}.upload_post_uploads AS up_u
    JOIN {ds}.upload_post_uploads__results AS up_r ON up_r._dlt_parent_id = up_u._dlt_id""")
