package ddbbridge.kcl;

import com.amazonaws.services.dynamodbv2.streamsadapter.AmazonDynamoDBStreamsAdapterClient;
import com.amazonaws.services.dynamodbv2.streamsadapter.StreamsSchedulerFactory;
import com.amazonaws.services.dynamodbv2.streamsadapter.model.DynamoDBStreamsProcessRecordsInput;
import com.amazonaws.services.dynamodbv2.streamsadapter.polling.DynamoDBStreamsPollingConfig;
import com.amazonaws.services.dynamodbv2.streamsadapter.processor.DynamoDBStreamsShardRecordProcessor;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClientBuilder;
import software.amazon.awssdk.services.dynamodb.streams.DynamoDbStreamsClient;
import software.amazon.awssdk.services.dynamodb.streams.DynamoDbStreamsClientBuilder;
import software.amazon.kinesis.checkpoint.CheckpointConfig;
import software.amazon.kinesis.common.ConfigsBuilder;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.coordinator.CoordinatorConfig;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.leases.LeaseManagementConfig;
import software.amazon.kinesis.lifecycle.LifecycleConfig;
import software.amazon.kinesis.lifecycle.events.InitializationInput;
import software.amazon.kinesis.lifecycle.events.LeaseLostInput;
import software.amazon.kinesis.lifecycle.events.ProcessRecordsInput;
import software.amazon.kinesis.lifecycle.events.ShardEndedInput;
import software.amazon.kinesis.lifecycle.events.ShutdownRequestedInput;
import software.amazon.kinesis.metrics.MetricsConfig;
import software.amazon.kinesis.multilang.MultiLangRecordProcessorFactory;
import software.amazon.kinesis.multilang.config.ConfigurationSettableUtils;
import software.amazon.kinesis.multilang.config.KinesisClientLibConfigurator;
import software.amazon.kinesis.multilang.config.MultiLangDaemonConfiguration;
import software.amazon.kinesis.processor.ProcessorConfig;
import software.amazon.kinesis.processor.ShardRecordProcessor;
import software.amazon.kinesis.retrieval.RetrievalConfig;
import software.amazon.kinesis.retrieval.polling.PollingConfig;

/**
 * KCL 3's MultiLang record processors on a DynamoDB stream, through the DynamoDB Streams Kinesis
 * Adapter's scheduler.
 *
 * <p>The properties file is the MultiLangDaemon's (the KCL's own parser reads it: executableName,
 * applicationName, timing knobs, AwsCredentialsProvider, regionName, dynamoDBEndpoint...) plus
 * two keys of this launcher: {@code dynamoDBStreamArn} (required) and {@code
 * dynamoDBStreamsEndpoint} (optional). Everything else is the adapter's and the KCL's: this
 * class only wires MultiLang's processors into {@link StreamsSchedulerFactory}, which insists on
 * its own processor type and polling config.
 *
 * <p>Exit codes: 0 after a clean stop (SIGTERM: a graceful shutdown, checkpoints first), 1 when
 * the scheduler failed, 2 for a bad properties file (one line on stderr, no stack trace).
 */
public final class DynamoDBStreamsMultiLangDaemon {
    static final String STREAM_ARN = "dynamoDBStreamArn";
    static final String STREAMS_ENDPOINT = "dynamoDBStreamsEndpoint";

    private DynamoDBStreamsMultiLangDaemon() {}

    public static void main(String[] args) {
        Scheduler built;
        long grace;
        try {
            Properties properties = load(args);
            String arn = take(properties, STREAM_ARN);
            String streamsEndpoint = (String) properties.remove(STREAMS_ENDPOINT);
            if (arn == null || arn.isBlank()) {
                throw new IllegalArgumentException(STREAM_ARN + " is missing from the properties file");
            }
            // The MultiLang parser wants a stream name; the adapter's tracker names the stream.
            properties.setProperty("streamName", arn.substring(arn.lastIndexOf('/') + 1));
            properties.remove("streamArn");
            MultiLangDaemonConfiguration config = new KinesisClientLibConfigurator().getConfiguration(properties);
            built = scheduler(config, properties, arn, streamsEndpoint);
            grace = config.getShutdownGraceMillis() > 0 ? config.getShutdownGraceMillis() : 30_000;
        } catch (RuntimeException | IOException e) {
            System.err.println("ddb-bridge DynamoDB Streams KCL daemon: " + e.getMessage());
            System.exit(2);
            return;
        }
        final Scheduler scheduler = built;
        final long graceMillis = grace;
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                // Every processor checkpoints what Kafka acknowledged (shutdown_requested).
                scheduler.startGracefulShutdown().get(graceMillis, TimeUnit.MILLISECONDS);
            } catch (Exception e) {
                System.err.println("graceful shutdown did not finish: " + e);
            }
        }));
        try {
            scheduler.run();
        } catch (Throwable t) {
            t.printStackTrace(System.err);
            System.exit(1);
        }
        // The MultiLang pipes' threads would keep the JVM up after the scheduler is done.
        System.exit(0);
    }

    private static Properties load(String[] args) throws IOException {
        String file = null;
        for (int i = 0; i < args.length; i++) {
            if (("--properties-file".equals(args[i]) || "-p".equals(args[i])) && i + 1 < args.length) {
                file = args[++i];
            }
        }
        if (file == null) {
            throw new IllegalArgumentException("usage: --properties-file FILE");
        }
        Properties properties = new Properties();
        try (InputStream in = new FileInputStream(file)) {
            properties.load(in);
        }
        return properties;
    }

    private static String take(Properties properties, String key) {
        Object value = properties.remove(key);
        return value == null ? null : value.toString().trim();
    }

    static Scheduler scheduler(
            MultiLangDaemonConfiguration config, Properties properties, String arn, String streamsEndpoint) {
        AwsCredentialsProvider credentials =
                config.getKinesisCredentialsProvider().build(AwsCredentialsProvider.class);
        Region region = Region.of(properties.getProperty("regionName", "us-east-1").trim());

        DynamoDbStreamsClientBuilder streams =
                DynamoDbStreamsClient.builder().region(region).credentialsProvider(credentials);
        if (streamsEndpoint != null && !streamsEndpoint.isBlank()) {
            streams.endpointOverride(URI.create(streamsEndpoint.trim()));
        }
        AmazonDynamoDBStreamsAdapterClient adapter = new AmazonDynamoDBStreamsAdapterClient(streams.build(), region);
        // The adapter's default jumps to TRIM_HORIZON when records were trimmed before they were
        // read: a silent gap. Retrying keeps the gap loud (the shard stops, errors are logged).
        adapter.setSkipRecordsBehavior(AmazonDynamoDBStreamsAdapterClient.SkipRecordsBehavior.KCL_RETRY);

        DynamoDbAsyncClientBuilder leases =
                DynamoDbAsyncClient.builder().region(region).credentialsProvider(credentials);
        String leaseEndpoint = properties.getProperty("dynamoDBEndpoint");
        if (leaseEndpoint != null && !leaseEndpoint.isBlank()) {
            leases.endpointOverride(URI.create(leaseEndpoint.trim()));
        }
        CloudWatchAsyncClient cloudWatch =
                CloudWatchAsyncClient.builder().region(region).credentialsProvider(credentials).build();

        ExecutorService pipes = Executors.newCachedThreadPool();
        MultiLangRecordProcessorFactory multiLang =
                new MultiLangRecordProcessorFactory(properties.getProperty("executableName"), pipes, config);
        InitialPositionInStreamExtended position = config.getInitialPositionInStreamExtended();
        ConfigsBuilder configs = new ConfigsBuilder(
                StreamsSchedulerFactory.createSingleStreamTracker(arn, position),
                config.getApplicationName(),
                adapter,
                leases.build(),
                cloudWatch,
                config.getWorkerIdentifier(),
                () -> new MultiLangStreamsProcessor(multiLang.shardRecordProcessor()));

        // The properties' values onto the KCL's config objects, as the MultiLangDaemon does.
        // ConfigsBuilder makes a new object on every call: each is taken once and kept.
        Map<Class<?>, Object> objects = new HashMap<>();
        objects.put(ConfigsBuilder.class, configs);
        ConfigurationSettableUtils.resolveFields(config, objects, null, null);
        CheckpointConfig checkpoint = configs.checkpointConfig();
        CoordinatorConfig coordinator = configs.coordinatorConfig();
        LeaseManagementConfig leaseManagement = configs.leaseManagementConfig();
        LifecycleConfig lifecycle = configs.lifecycleConfig();
        MetricsConfig metrics = configs.metricsConfig();
        ProcessorConfig processor = configs.processorConfig();
        RetrievalConfig retrieval = configs.retrievalConfig();
        DynamoDBStreamsPollingConfig polling = new DynamoDBStreamsPollingConfig(adapter);
        objects.clear();
        for (Object part : List.of(checkpoint, coordinator, leaseManagement, lifecycle, metrics, processor, retrieval)) {
            objects.put(part.getClass(), part);
        }
        objects.put(PollingConfig.class, polling);
        ConfigurationSettableUtils.resolveFields(config, objects, null, new HashSet<>(List.of(ConfigsBuilder.class)));
        ConfigurationSettableUtils.resolveFields(config.getPollingConfig(), objects, null, null);
        // The adapter (2.0.1) builds its lease management factory from this value before it sets
        // it to 0 itself, so the KCL's default of 60 s stayed as a sleep after every shard sync:
        // a minute before the first lease, and before a split's children. 0 is the adapter's
        // intent (its DescribeStream calls are paced by the KCL's own shard sync schedule).
        leaseManagement.shardSyncIntervalMillis(0);
        return StreamsSchedulerFactory.createScheduler(
                checkpoint,
                coordinator,
                leaseManagement,
                lifecycle,
                metrics,
                processor,
                retrieval.retrievalSpecificConfig(polling),
                adapter);
    }

    /** A MultiLang processor under the type the adapter's scheduler requires; records pass as they are. */
    static final class MultiLangStreamsProcessor implements DynamoDBStreamsShardRecordProcessor {
        private final ShardRecordProcessor multiLang;

        MultiLangStreamsProcessor(ShardRecordProcessor multiLang) {
            this.multiLang = multiLang;
        }

        @Override
        public void initialize(InitializationInput input) {
            multiLang.initialize(input);
        }

        @Override
        public void processRecords(ProcessRecordsInput input) {
            // Each record's data is the adapter's JSON of the DynamoDB Streams record.
            multiLang.processRecords(input);
        }

        @Override
        public void processRecords(DynamoDBStreamsProcessRecordsInput input) {
            throw new UnsupportedOperationException("records reach MultiLang as ProcessRecordsInput");
        }

        @Override
        public void leaseLost(LeaseLostInput input) {
            multiLang.leaseLost(input);
        }

        @Override
        public void shardEnded(ShardEndedInput input) {
            multiLang.shardEnded(input);
        }

        @Override
        public void shutdownRequested(ShutdownRequestedInput input) {
            multiLang.shutdownRequested(input);
        }
    }
}
