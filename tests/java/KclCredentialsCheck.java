import java.io.FileInputStream;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.kinesis.multilang.config.KinesisClientLibConfigurator;
import software.amazon.kinesis.multilang.config.MultiLangDaemonConfiguration;

/**
 * Reads a properties file with the KCL MultiLangDaemon's own configurator and prints the
 * access key id its credentials provider resolves: the same parsing and provider the daemon
 * would use, without starting a worker. Run as `java -cp 'JARS/*' KclCredentialsCheck.java FILE`.
 */
public class KclCredentialsCheck {
    public static void main(String[] args) throws Exception {
        MultiLangDaemonConfiguration config;
        try (FileInputStream in = new FileInputStream(args[0])) {
            config = new KinesisClientLibConfigurator().getConfiguration(in);
        }
        AwsCredentialsProvider provider =
                config.getKinesisCredentialsProvider().build(AwsCredentialsProvider.class);
        System.out.println("access-key-id=" + provider.resolveCredentials().accessKeyId());
    }
}
