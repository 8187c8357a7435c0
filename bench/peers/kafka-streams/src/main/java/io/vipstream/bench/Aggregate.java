package io.vipstream.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The bench's peer aggregation: every input event decoded from JSON and added to its
 * customer's running revenue, service cost and event count, kept in a RocksDB store with
 * its changelog (Kafka Streams' defaults). Prints one JSON line when `expected` events
 * were aggregated: how long that took from the first one.
 *
 * <p>Arguments: bootstrap servers, application id, processing guarantee (at_least_once
 * or exactly_once_v2), commit interval in ms, the number of events to wait for, then the
 * input topics.
 */
public final class Aggregate {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Aggregate() {}

  /** revenue (orders), service cost (contacts), events; as a small fixed-size string. */
  static String add(String total, String event) {
    double revenue = 0;
    double cost = 0;
    long events = 0;
    if (total != null) {
      String[] parts = total.split(",", 3);
      revenue = Double.parseDouble(parts[0]);
      cost = Double.parseDouble(parts[1]);
      events = Long.parseLong(parts[2]);
    }
    try {
      JsonNode node = JSON.readTree(event);
      if ("order".equals(node.path("event_type").asText())) {
        revenue += node.path("amount").asDouble(0);
      } else {
        cost += node.path("cost").asDouble(node.path("duration_seconds").asDouble(0) / 60.0);
      }
    } catch (Exception invalid) {
      // counted like the others: the bench's stream has a share of invalid lines
    }
    return revenue + "," + cost + "," + (events + 1);
  }

  public static void main(String[] args) throws InterruptedException {
    String bootstrap = args[0];
    String applicationId = args[1];
    String guarantee = args[2];
    String commitMs = args[3];
    long expected = Long.parseLong(args[4]);
    List<String> topics = List.of(args).subList(5, args.length);

    Properties config = new Properties();
    config.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
    config.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    config.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    config.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitMs);
    config.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
    config.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, String.valueOf(10 * 1024 * 1024));
    config.put(StreamsConfig.STATE_DIR_CONFIG, System.getProperty("java.io.tmpdir") + "/" + applicationId);
    config.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

    AtomicLong seen = new AtomicLong();
    AtomicLong first = new AtomicLong();
    AtomicLong last = new AtomicLong();
    CountDownLatch done = new CountDownLatch(1);
    StreamsBuilder builder = new StreamsBuilder();
    builder.stream(topics, Consumed.with(Serdes.String(), Serdes.String()))
        .peek((key, value) -> {
          long n = seen.incrementAndGet();
          if (n == 1) {
            first.set(System.nanoTime());
          }
          if (n == expected) { // aggregated right after this, on the same thread
            last.set(System.nanoTime());
            done.countDown();
          }
        })
        .groupByKey(Grouped.with(Serdes.String(), Serdes.String()))
        .aggregate(
            () -> null,
            (key, event, total) -> add(total, event),
            Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("totals-by-customer")
                .withKeySerde(Serdes.String())
                .withValueSerde(Serdes.String()));
    KafkaStreams streams = new KafkaStreams(builder.build(), config);
    Runtime.getRuntime().addShutdownHook(new Thread(streams::close));
    long started = System.nanoTime();
    streams.start();
    done.await();
    double seconds = (last.get() - first.get()) / 1e9;
    double total = (last.get() - started) / 1e9;
    System.out.println(
        "{\"events\": " + seen.get() + ", \"seconds\": " + seconds + ", \"seconds_from_start\": "
            + total + "}");
    System.out.flush();
    streams.close();
  }
}
