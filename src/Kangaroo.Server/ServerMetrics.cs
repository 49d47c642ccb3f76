using Kangaroo.Serving;
using Prometheus;

namespace Kangaroo.Server;

/// <summary>
/// The server's Prometheus metrics, in a registry of its own (several servers in one process do not share figures):
/// the engine's counters and gauges are read from <see cref="ContinuousBatcher.Statistics"/> when scraped; request counts and
/// latencies are recorded by the endpoints.
/// </summary>
internal sealed class ServerMetrics
{
    private readonly CollectorRegistry _registry = Metrics.NewCustomRegistry();
    private readonly Counter _requests;
    private readonly Histogram _timeToFirstToken, _requestDuration;

    public ServerMetrics(ContinuousBatcher batcher)
    {
        var factory = Metrics.WithCustomRegistry(_registry);
        var queue = factory.CreateGauge("kangaroo_queue_depth", "Requests waiting for a sequence slot.");
        var active = factory.CreateGauge("kangaroo_active_sequences", "Sequences in the running batch.");
        var slots = factory.CreateGauge("kangaroo_max_sequences", "Sequence slots of the batch.");
        var rate = factory.CreateGauge("kangaroo_tokens_per_second", "Tokens generated per second over the last 10 seconds.");
        var acceptance = factory.CreateGauge("kangaroo_acceptance_rate", "Accepted ÷ drafted tokens of finished Kangaroo requests.");
        var tokens = factory.CreateCounter("kangaroo_generated_tokens_total", "Tokens generated.");
        var rounds = factory.CreateCounter("kangaroo_rounds_total", "Scheduler rounds (each advances every running sequence).");
        var drafted = factory.CreateCounter("kangaroo_draft_tokens_total", "Draft tokens proposed by finished Kangaroo requests.");
        var accepted = factory.CreateCounter("kangaroo_accepted_draft_tokens_total", "Draft tokens accepted by verification.");
        var finished = factory.CreateCounter("kangaroo_sequences_finished_total", "Sequences that ended (finished, stopped or cancelled).");
        var cancelled = factory.CreateCounter("kangaroo_sequences_cancelled_total", "Sequences cancelled (a client disconnect, or a shutdown past its drain).");
        var failed = factory.CreateCounter("kangaroo_sequences_failed_total", "Sequences ended by an engine error.");
        _requests = factory.CreateCounter("kangaroo_http_requests_total", "HTTP requests by endpoint and status code.",
            new CounterConfiguration { LabelNames = ["endpoint", "code"] });
        _timeToFirstToken = factory.CreateHistogram("kangaroo_time_to_first_token_seconds", "From a streaming request's arrival to its first text.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        _requestDuration = factory.CreateHistogram("kangaroo_request_duration_seconds", "From a generation request's arrival to its last byte.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.005, 2, 16) });
        slots.Set(batcher.MaxSequences);
        _registry.AddBeforeCollectCallback(() =>
        {
            var s = batcher.Statistics;
            queue.Set(batcher.QueueDepth);
            active.Set(batcher.ActiveSequences);
            rate.Set(s.TokensPerSecond);
            if (s.AcceptanceRate is double a) acceptance.Set(a);
            tokens.IncTo(s.TokensGenerated);
            rounds.IncTo(s.Rounds);
            drafted.IncTo(s.Drafted);
            accepted.IncTo(s.Accepted);
            finished.IncTo(s.RequestsFinished);
            cancelled.IncTo(s.RequestsCancelled);
            failed.IncTo(s.RequestsFailed);
        });
    }

    public void Request(string endpoint, int status) => _requests.WithLabels(endpoint, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();

    public void FirstToken(TimeSpan sinceArrival) => _timeToFirstToken.Observe(sinceArrival.TotalSeconds);

    public void Finished(TimeSpan sinceArrival) => _requestDuration.Observe(sinceArrival.TotalSeconds);

    public Task ExportAsync(Stream destination, CancellationToken cancellation) => _registry.CollectAndExportAsTextAsync(destination, cancellation);
}
