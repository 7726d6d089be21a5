package io.microdit.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.microdit.tensor.Device;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Registered for every test class (service loader + autodetection): the live native bytes of each device must be
 * back where they were when the class started.
 */
public final class LeakCheckExtension implements BeforeAllCallback, AfterAllCallback {
    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(LeakCheckExtension.class);

    @Override
    public void beforeAll(ExtensionContext context) {
        for (Device device : Device.values()) {
            context.getStore(NS).put(device, device.liveBytes());
        }
    }

    @Override
    public void afterAll(ExtensionContext context) {
        for (Device device : Device.values()) {
            long before = context.getStore(NS).get(device, Long.class);
            assertEquals(before, device.liveBytes(), () -> context.getDisplayName() + " leaked native memory on "
                    + device + " (live bytes before vs after the class)");
        }
    }
}
