/// The product's version, as `yard --version` prints it.
public enum Trainyard {
    public static let version = "0.8.0"
}
